package onnx

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto)
// for the messages written here.
const (
	modelIRVersion     = 1
	modelProducerName  = 2
	modelProducerVer   = 3
	modelDocString     = 6
	modelGraph         = 7
	modelOpsetImport   = 8
	modelMetadataProps = 14

	opsetDomain  = 1
	opsetVersion = 2

	entryKey   = 1
	entryValue = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5

	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrS      = 4
	attrInts   = 8
	attrFloats = 7
	attrType   = 20

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueName = 1
	valueType = 2

	typeTensor     = 1
	tensorElemType = 1
	tensorShape    = 2
	shapeDim       = 1
	dimValue       = 1
	dimParam       = 2
)

// AttributeProto.AttributeType and TensorProto.DataType values.
const (
	attrTypeFloat  = 1
	attrTypeInt    = 2
	attrTypeString = 3
	attrTypeFloats = 6
	attrTypeInts   = 7

	dataFloat = 1
	dataInt64 = 7
)

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendInt(b []byte, field protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// attribute is an encoded AttributeProto.
type attribute []byte

func attrInt(name string, v int64) attribute {
	b := appendString(nil, attrName, name)
	b = appendInt(b, attrType, attrTypeInt)
	return appendInt(b, attrI, v)
}

func attrIntList(name string, vs ...int) attribute {
	b := appendString(nil, attrName, name)
	b = appendInt(b, attrType, attrTypeInts)
	for _, v := range vs {
		b = appendInt(b, attrInts, int64(v))
	}
	return b
}

func attrFloat(name string, v float32) attribute {
	b := appendString(nil, attrName, name)
	b = appendInt(b, attrType, attrTypeFloat)
	b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(v))
}

func attrString(name, v string) attribute {
	b := appendString(nil, attrName, name)
	b = appendInt(b, attrType, attrTypeString)
	return appendString(b, attrS, v)
}

// node encodes a NodeProto.
func node(op, name string, inputs, outputs []string, attrs ...attribute) []byte {
	var b []byte
	for _, in := range inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range outputs {
		b = appendString(b, nodeOutput, out)
	}
	b = appendString(b, nodeName, name)
	b = appendString(b, nodeOpType, op)
	for _, a := range attrs {
		b = appendBytes(b, nodeAttribute, a)
	}
	return b
}

// dim is one dimension of a value's shape: a size, or a symbolic name when param is set.
type dim struct {
	value int
	param string
}

// valueInfo encodes a ValueInfoProto of a float32 tensor.
func valueInfo(name string, dims []dim) []byte {
	var shape []byte
	for _, d := range dims {
		var db []byte
		if d.param != "" {
			db = appendString(nil, dimParam, d.param)
		} else {
			db = appendInt(nil, dimValue, int64(d.value))
		}
		shape = appendBytes(shape, shapeDim, db)
	}
	tt := appendInt(nil, tensorElemType, dataFloat)
	tt = appendBytes(tt, tensorShape, shape)
	typ := appendBytes(nil, typeTensor, tt)
	b := appendString(nil, valueName, name)
	return appendBytes(b, valueType, typ)
}

// tensorHeader encodes the fields of a TensorProto before its raw_data, and the tag and
// length of raw_data, so that the data can follow without being copied.
func tensorHeader(name string, dataType int, dims []int, rawLen int) []byte {
	var b []byte
	for _, d := range dims {
		b = appendInt(b, tensorDims, int64(d))
	}
	b = appendInt(b, tensorDataType, int64(dataType))
	b = appendString(b, tensorName, name)
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(rawLen))
}

// int64Raw encodes int64 values as raw_data (little-endian).
func int64Raw(vs ...int64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

// float32Raw encodes float32 values as raw_data (little-endian).
func float32Raw(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
