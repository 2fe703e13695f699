package tensorboard

// An event-file reader written from the formats' documentation, not from the
// writer: the TFRecord framing from "TFRecord format details" in
// https://www.tensorflow.org/tutorials/load_data/tfrecord, the CRC-32C from
// its polynomial, and the Event and Summary messages from TensorBoard's
// tensorboard/compat/proto/event.proto and summary.proto, decoded field by
// field with protowire.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

var errChecksum = errors.New("checksum mismatch")

// crc32cBitwise is CRC-32C (Castagnoli, reversed polynomial 0x82f63b78,
// initial value and final xor 0xffffffff), one bit at a time.
func crc32cBitwise(p []byte) uint32 {
	crc := ^uint32(0)
	for _, b := range p {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82f63b78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// mask is "masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8ul".
func mask(crc uint32) uint32 {
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8
}

// readRecords reads TFRecords until the end of r:
//
//	uint64 length
//	uint32 masked_crc32_of_length
//	byte   data[length]
//	uint32 masked_crc32_of_data
//
// It returns the records read before the first damaged one, and an error
// wrapping io.ErrUnexpectedEOF for a torn (truncated) record or errChecksum
// for a corrupt one.
func readRecords(r io.Reader) ([][]byte, error) {
	br := bufio.NewReader(r)
	var recs [][]byte
	for off := int64(0); ; {
		var hdr [12]byte
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return recs, nil // a clean end: between records
		}
		if err != nil {
			return recs, fmt.Errorf("record %d at byte %d: header (%d of 12 bytes): %w", len(recs), off, n, err)
		}
		if got, want := binary.LittleEndian.Uint32(hdr[8:]), mask(crc32cBitwise(hdr[:8])); got != want {
			return recs, fmt.Errorf("record %d at byte %d: length crc %#08x, want %#08x: %w", len(recs), off, got, want, errChecksum)
		}
		length := binary.LittleEndian.Uint64(hdr[:8])
		body := make([]byte, length+4)
		if n, err := io.ReadFull(br, body); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return recs, fmt.Errorf("record %d at byte %d: data and crc (%d of %d bytes): %w", len(recs), off, n, len(body), err)
		}
		data := body[:length]
		if got, want := binary.LittleEndian.Uint32(body[length:]), mask(crc32cBitwise(data)); got != want {
			return recs, fmt.Errorf("record %d at byte %d: data crc %#08x, want %#08x: %w", len(recs), off, got, want, errChecksum)
		}
		recs = append(recs, data)
		off += int64(len(hdr) + len(body))
	}
}

// readFile reads every record of the file at path.
func readFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRecords(f)
}

// gotEvent is what a test checks of a tensorboard.Event.
type gotEvent struct {
	wall        float64
	step        int64
	fileVersion string
	hasSummary  bool
	values      []gotValue
}

// gotValue is a tensorboard.Summary.Value holding a simple_value.
type gotValue struct {
	tag    string
	simple float32
}

// decodeEvent decodes message Event:
//
//	double wall_time = 1;
//	int64 step = 2;
//	oneof what { string file_version = 3; ...; Summary summary = 5; ... }
//
// and refuses any other field, or a known field with another wire type.
func decodeEvent(b []byte) (gotEvent, error) {
	var e gotEvent
	err := walk(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			e.wall = math.Float64frombits(v)
			return n, nil
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			e.step = int64(v)
			return n, nil
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			e.fileVersion = string(v)
			return n, nil
		case num == 5 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return n, nil
			}
			e.hasSummary = true
			vals, err := decodeSummary(v)
			e.values = append(e.values, vals...)
			return n, err
		}
		return 0, fmt.Errorf("Event: unexpected field %d of wire type %d", num, typ)
	})
	return e, err
}

// decodeSummary decodes message Summary { repeated Value value = 1; }.
func decodeSummary(b []byte) ([]gotValue, error) {
	var vals []gotValue
	err := walk(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		if num != 1 || typ != protowire.BytesType {
			return 0, fmt.Errorf("Summary: unexpected field %d of wire type %d", num, typ)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n, nil
		}
		val, err := decodeValue(v)
		vals = append(vals, val)
		return n, err
	})
	return vals, err
}

// decodeValue decodes message Summary.Value
// { string tag = 1; oneof value { float simple_value = 2; ... } }.
func decodeValue(b []byte) (gotValue, error) {
	var v gotValue
	seen := 0
	err := walk(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			s, n := protowire.ConsumeBytes(b)
			v.tag = string(s)
			return n, nil
		case num == 2 && typ == protowire.Fixed32Type:
			f, n := protowire.ConsumeFixed32(b)
			v.simple = math.Float32frombits(f)
			seen++
			return n, nil
		}
		return 0, fmt.Errorf("Summary.Value: unexpected field %d of wire type %d", num, typ)
	})
	if err == nil && seen != 1 {
		err = fmt.Errorf("Summary.Value %q: %d simple_value fields, want 1", v.tag, seen)
	}
	return v, err
}

// walk calls field for each field of the message b, with b after the tag;
// field returns the length of the field's value, negative for a protowire
// parse error.
func walk(b []byte, field func(protowire.Number, protowire.Type, []byte) (int, error)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		n, err := field(num, typ, b)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// readEvents reads and decodes every Event of the file at path.
func readEvents(path string) ([]gotEvent, error) {
	recs, err := readFile(path)
	if err != nil {
		return nil, err
	}
	events := make([]gotEvent, len(recs))
	for i, r := range recs {
		if events[i], err = decodeEvent(r); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return events, nil
}
