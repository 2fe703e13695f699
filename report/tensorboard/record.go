package tensorboard

import (
	"encoding/binary"
	"hash/crc32"
)

// castagnoli is the table of CRC-32C, the CRC of TFRecords.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskDelta is added to the rotated CRC; the mask is the one LevelDB uses so
// that a CRC of data holding embedded CRCs stays well distributed.
const maskDelta = 0xa282ead8

// maskedCRC returns the masked CRC-32C of p:
// ((crc >> 15) | (crc << 17)) + 0xa282ead8.
func maskedCRC(p []byte) uint32 {
	crc := crc32.Checksum(p, castagnoli)
	return (crc>>15 | crc<<17) + maskDelta
}

// appendRecord appends data to dst framed as one TFRecord, as "TFRecord
// format details" in https://www.tensorflow.org/tutorials/load_data/tfrecord
// describes it:
//
//	uint64 length
//	uint32 masked_crc32_of_length
//	byte   data[length]
//	uint32 masked_crc32_of_data
//
// All integers are little endian and the CRC is CRC-32C (Castagnoli).
func appendRecord(dst, data []byte) []byte {
	n := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(data)))
	dst = binary.LittleEndian.AppendUint32(dst, maskedCRC(dst[n:]))
	dst = append(dst, data...)
	return binary.LittleEndian.AppendUint32(dst, maskedCRC(data))
}
