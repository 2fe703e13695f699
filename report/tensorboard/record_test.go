package tensorboard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

func TestMaskedCRC(t *testing.T) {
	seq := make([]byte, 32)  // 0, 1, ..., 31
	rev := make([]byte, 32)  // 31, 30, ..., 0
	ones := make([]byte, 32) // 0xff × 32
	for i := range 32 {
		seq[i], rev[i], ones[i] = byte(i), byte(31-i), 0xff
	}
	// iSCSI read command PDU, RFC 3720 section B.4.
	pdu := []byte{
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	tests := []struct {
		name   string
		data   []byte
		crc    uint32 // CRC-32C; 0 when the source gives only the masked value
		masked uint32 // mask(crc), worked out by hand from the formula
	}{
		{"empty", nil, 0, 0xa282ead8},
		// RFC 3720 section B.4, also in TensorFlow's crc32c_test.cc.
		{"32 zeros", make([]byte, 32), 0x8a9136aa, 0x0fd7fffa},
		{"32 0xff", ones, 0x62a8ab43, 0xf909b029},
		{"0..31", seq, 0x46dd794e, 0x951f7892},
		{"31..0", rev, 0x113fdb5c, 0x593b0d57},
		{"iSCSI PDU", pdu, 0xd9963a56, 0x17309e04},
		// The usual check value of CRC-32C.
		{"123456789", []byte("123456789"), 0xe3069283, 0xc78ab0e5},
		// The data CRC of a record of a real TensorFlow event file holding
		// Event{file_version: "CRC test, one two"}, quoted in TensorBoard's
		// tensorboard/data/server/masked_crc.rs.
		{"TensorFlow file_version record", []byte("\x1a\x11CRC test, one two"), 0, 0x5794d08a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.crc != 0 || len(tt.data) == 0 {
				if got := crc32.Checksum(tt.data, crc32.MakeTable(crc32.Castagnoli)); got != tt.crc {
					t.Errorf("hash/crc32 Castagnoli: got %#08x, want %#08x", got, tt.crc)
				}
				if got := crc32cBitwise(tt.data); got != tt.crc {
					t.Errorf("test reader's crc32c: got %#08x, want %#08x", got, tt.crc)
				}
				if got := mask(tt.crc); got != tt.masked {
					t.Errorf("test reader's mask(%#08x): got %#08x, want %#08x", tt.crc, got, tt.masked)
				}
			}
			if got := maskedCRC(tt.data); got != tt.masked {
				t.Errorf("maskedCRC: got %#08x, want %#08x", got, tt.masked)
			}
		})
	}
}

func TestAppendRecord(t *testing.T) {
	t.Run("layout", func(t *testing.T) {
		// The TensorFlow record of TestMaskedCRC: 19 bytes of data.
		data := []byte("\x1a\x11CRC test, one two")
		rec := appendRecord([]byte("prefix"), data)
		rec, ok := bytes.CutPrefix(rec, []byte("prefix"))
		if !ok {
			t.Fatalf("appendRecord dropped what dst held")
		}
		if got, want := len(rec), 8+4+len(data)+4; got != want {
			t.Fatalf("record is %d bytes, want %d", got, want)
		}
		if got := binary.LittleEndian.Uint64(rec[:8]); got != 19 {
			t.Errorf("length: got %d, want 19", got)
		}
		if got, want := binary.LittleEndian.Uint32(rec[8:12]), mask(crc32cBitwise(rec[:8])); got != want {
			t.Errorf("length crc: got %#08x, want %#08x", got, want)
		}
		if !bytes.Equal(rec[12:12+len(data)], data) {
			t.Errorf("data: got %q, want %q", rec[12:12+len(data)], data)
		}
		if got := binary.LittleEndian.Uint32(rec[12+len(data):]); got != 0x5794d08a {
			t.Errorf("data crc: got %#08x, want %#08x (TensorFlow's)", got, 0x5794d08a)
		}
	})
	t.Run("read back", func(t *testing.T) {
		datas := [][]byte{{}, {0}, []byte("x"), bytes.Repeat([]byte{0xa5}, 1<<16+3)}
		var file []byte
		for _, d := range datas {
			file = appendRecord(file, d)
		}
		got, err := readRecords(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(datas) {
			t.Fatalf("got %d records, want %d", len(got), len(datas))
		}
		for i := range datas {
			if !bytes.Equal(got[i], datas[i]) {
				t.Errorf("record %d: got %d bytes, want %d", i, len(got[i]), len(datas[i]))
			}
		}
	})
}

// TestReaderDetectsDamage checks that the test reader (and so any reader
// following the format) tells a torn last record, as left by a crash in the
// middle of a write, and a corrupt one from a whole file.
func TestReaderDetectsDamage(t *testing.T) {
	first := appendRecord(nil, []byte("first"))
	file := appendRecord(bytes.Clone(first), []byte("second record"))
	n := len(first) // where the last record starts
	flip := func(i int) []byte {
		b := bytes.Clone(file)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		file    []byte
		records int   // intact records before the damage
		err     error // nil: a whole file
	}{
		{"whole", file, 2, nil},
		{"cut between records", file[:n], 1, nil},
		{"empty", nil, 0, nil},
		{"cut in first length", file[:3], 0, io.ErrUnexpectedEOF},
		{"cut in last length", file[:n+5], 1, io.ErrUnexpectedEOF},
		{"cut in last length crc", file[:n+10], 1, io.ErrUnexpectedEOF},
		{"cut after last header", file[:n+12], 1, io.ErrUnexpectedEOF},
		{"cut in last data", file[:n+12+4], 1, io.ErrUnexpectedEOF},
		{"cut before last data crc", file[:len(file)-4], 1, io.ErrUnexpectedEOF},
		{"cut in last data crc", file[:len(file)-1], 1, io.ErrUnexpectedEOF},
		{"flipped length", flip(n), 1, errChecksum},
		{"flipped high length bit", flip(n + 7), 1, errChecksum},
		{"flipped length crc", flip(n + 9), 1, errChecksum},
		{"flipped data", flip(n + 12 + 3), 1, errChecksum},
		{"flipped data crc", flip(len(file) - 2), 1, errChecksum},
		{"flipped first data", flip(12), 0, errChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := readRecords(bytes.NewReader(tt.file))
			if !errors.Is(err, tt.err) {
				t.Errorf("got error %v, want %v", err, tt.err)
			}
			if len(recs) != tt.records {
				t.Errorf("got %d intact records, want %d", len(recs), tt.records)
			}
		})
	}
}
