package tensorboard

import (
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the messages written, from TensorBoard's copies of
// TensorFlow's protos: tensorboard/compat/proto/event.proto and
// tensorboard/compat/proto/summary.proto (package tensorboard, proto3).
const (
	// message Event
	eventWallTime    protowire.Number = 1 // double wall_time = 1;
	eventStep        protowire.Number = 2 // int64 step = 2;
	eventFileVersion protowire.Number = 3 // oneof what { string file_version = 3; ...
	eventSummary     protowire.Number = 5 //            Summary summary = 5; ... }

	// message Summary
	summaryValue protowire.Number = 1 // repeated Value value = 1;

	// message Summary.Value
	valueTag         protowire.Number = 1 // string tag = 1;
	valueSimpleValue protowire.Number = 2 // oneof value { float simple_value = 2; ... }
)

// FileVersion is the file_version of the first Event of every file. The
// proto's comment: "Current version is "brain.Event:2". All versions start
// with "brain.Event:"."
const FileVersion = "brain.Event:2"

// wallSeconds is t as the seconds since the Unix epoch, with its fraction.
func wallSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// appendEventHeader appends an Event's wall_time and step.
func appendEventHeader(b []byte, wall time.Time, step int64) []byte {
	b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(wallSeconds(wall)))
	b = protowire.AppendTag(b, eventStep, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(step))
}

// appendVersionEvent appends an Event{wall_time, step: 0, file_version}.
func appendVersionEvent(b []byte, wall time.Time) []byte {
	b = appendEventHeader(b, wall, 0)
	b = protowire.AppendTag(b, eventFileVersion, protowire.BytesType)
	return protowire.AppendString(b, FileVersion)
}

// appendScalarsEvent appends an Event{wall_time, step, summary} whose Summary
// holds one Value{tag, simple_value} per element of values, in order.
func appendScalarsEvent(b []byte, wall time.Time, step int64, values []Value) []byte {
	b = appendEventHeader(b, wall, step)
	summaryLen := 0
	for _, v := range values {
		summaryLen += protowire.SizeTag(summaryValue) + protowire.SizeBytes(valueLen(v))
	}
	b = protowire.AppendTag(b, eventSummary, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(summaryLen))
	for _, v := range values {
		b = protowire.AppendTag(b, summaryValue, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(valueLen(v)))
		b = protowire.AppendTag(b, valueTag, protowire.BytesType)
		b = protowire.AppendString(b, v.Tag)
		b = protowire.AppendTag(b, valueSimpleValue, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(float32(v.Value)))
	}
	return b
}

// valueLen is the encoded size of one Summary.Value.
func valueLen(v Value) int {
	return protowire.SizeTag(valueTag) + protowire.SizeBytes(len(v.Tag)) +
		protowire.SizeTag(valueSimpleValue) + protowire.SizeFixed32()
}
