package pth

import (
	"encoding/binary"
	"math"
	"unsafe"
)

var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes views v's memory as bytes (little-endian hosts only).
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func toFloat32(dt DType, b []byte) float32 {
	le := binary.LittleEndian
	switch dt {
	case Float32:
		return math.Float32frombits(le.Uint32(b))
	case Float64:
		return float32(math.Float64frombits(le.Uint64(b)))
	case BFloat16:
		return math.Float32frombits(uint32(le.Uint16(b)) << 16)
	case Float16:
		return halfToFloat32(le.Uint16(b))
	}
	return 0
}

func toInt64(dt DType, b []byte) int64 {
	le := binary.LittleEndian
	switch dt {
	case Int64:
		return int64(le.Uint64(b))
	case Int32:
		return int64(int32(le.Uint32(b)))
	case Int16:
		return int64(int16(le.Uint16(b)))
	case Int8:
		return int64(int8(b[0]))
	case Uint8, Bool:
		return int64(b[0])
	}
	return 0
}

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac × 2^-24
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
