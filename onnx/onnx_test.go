package onnx

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vggo/vggo/graphs"
)

// fields decodes one protobuf message into its fields, in order (a test-only reader).
type field struct {
	num   protowire.Number
	bytes []byte // BytesType
	v     uint64 // VarintType, Fixed32Type
}

func decode(t *testing.T, b []byte) []field {
	t.Helper()
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("unexpected wire type %v", typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		out = append(out, f)
	}
	return out
}

func get(fs []field, num protowire.Number) []field {
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

// parsed is what the tests check of a written model.
type parsed struct {
	opset    uint64
	ops      []string
	inits    map[string][]float32
	inDims   []string
	outDims  []string
	metadata map[string]string
}

func dims(t *testing.T, vi []byte) []string {
	var out []string
	typ := get(decode(t, vi), valueType)[0].bytes
	tt := get(decode(t, typ), typeTensor)[0].bytes
	shape := get(decode(t, tt), tensorShape)[0].bytes
	for _, d := range get(decode(t, shape), shapeDim) {
		df := decode(t, d.bytes)[0]
		if df.num == dimParam {
			out = append(out, string(df.bytes))
		} else {
			out = append(out, fmt.Sprint(df.v))
		}
	}
	return out
}

func parse(t *testing.T, b []byte) parsed {
	t.Helper()
	model := decode(t, b)
	p := parsed{inits: map[string][]float32{}, metadata: map[string]string{}}
	if ir := get(model, modelIRVersion); len(ir) != 1 || ir[0].v != IRVersion {
		t.Errorf("ir_version %v", ir)
	}
	p.opset = get(decode(t, get(model, modelOpsetImport)[0].bytes), opsetVersion)[0].v
	for _, e := range get(model, modelMetadataProps) {
		kv := decode(t, e.bytes)
		p.metadata[string(kv[0].bytes)] = string(kv[1].bytes)
	}
	g := decode(t, get(model, modelGraph)[0].bytes)
	for _, n := range get(g, graphNode) {
		p.ops = append(p.ops, string(get(decode(t, n.bytes), nodeOpType)[0].bytes))
	}
	for _, in := range get(g, graphInitializer) {
		tf := decode(t, in.bytes)
		raw := get(tf, tensorRawData)[0].bytes
		v := make([]float32, len(raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		p.inits[string(get(tf, tensorName)[0].bytes)] = v
	}
	p.inDims = dims(t, get(g, graphInput)[0].bytes)
	p.outDims = dims(t, get(g, graphOutput)[0].bytes)
	return p
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		cfg         graphs.Config
		in, out     string
		ops         map[string]int
		notOps      []string
		wantUnusual string
	}{
		{cfg: graphs.Config{Arch: "vgg11", Mult: 1.0 / 16, InputH: 32, Classes: 7}, in: "N,3,32,32", out: "N,7",
			ops: map[string]int{"Conv": 8, "Relu": 10, "MaxPool": 5, "Flatten": 1, "Gemm": 3}, notOps: []string{"Dropout", "BatchNormalization"}},
		{cfg: graphs.Config{Arch: "alexnet", Mult: 1.0 / 16, InputH: 64}, in: "N,3,64,64", out: "N,1000",
			ops: map[string]int{"Conv": 5, "MaxPool": 3, "Gemm": 3}},
		{cfg: graphs.Config{Arch: "vgg16-segnet", Mult: 1.0 / 32}, in: "N,3,H,W", out: "N,21,H,W",
			ops: map[string]int{"Conv": 26, "BatchNormalization": 26, "Relu": 25, "Resize": 5, "MaxPool": 5}, notOps: []string{"MaxUnpool"}},
		{cfg: graphs.Config{Arch: "vgg16-segnet", Mult: 1.0 / 32, Unpool: graphs.UnpoolIndices}, in: "N,3,H,W", out: "N,21,H,W",
			ops: map[string]int{"MaxUnpool": 5, "Shape": 5, "MaxPool": 5}, notOps: []string{"Resize"}},
		{cfg: graphs.Config{Arch: "vgg19-unet", Mult: 1.0 / 32, Classes: 3}, in: "N,3,H,W", out: "N,3,H,W",
			ops: map[string]int{"Conv": 25, "Concat": 4, "Resize": 4, "MaxPool": 4}},
	} {
		t.Run(tc.cfg.Arch+tc.cfg.Unpool, func(t *testing.T) {
			m, err := graphs.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := Write(&b, m, Options{ClassNames: []string{"a"}}); err != nil {
				t.Fatal(err)
			}
			p := parse(t, b.Bytes())
			if p.opset != Opset {
				t.Errorf("opset %d, want %d", p.opset, Opset)
			}
			if got := strings.Join(p.inDims, ","); got != tc.in {
				t.Errorf("input dims %s, want %s", got, tc.in)
			}
			if got := strings.Join(p.outDims, ","); got != tc.out {
				t.Errorf("output dims %s, want %s", got, tc.out)
			}
			count := map[string]int{}
			for _, op := range p.ops {
				count[op]++
			}
			for op, n := range tc.ops {
				if count[op] != n {
					t.Errorf("%d %s nodes, want %d (ops %v)", count[op], op, n, count)
				}
			}
			for _, op := range tc.notOps {
				if count[op] != 0 {
					t.Errorf("%d %s nodes, want none", count[op], op)
				}
			}
			// Every parameter is an initializer with the model's values.
			for _, prm := range m.Params {
				if got, ok := p.inits[prm.Name]; !ok || !slices.Equal(got, prm.Data) {
					t.Errorf("initializer %s missing or different", prm.Name)
				}
			}
			if p.metadata["vggo.class_names"] != `["a"]` || p.metadata["vggo.input_mean"] != "0.485,0.456,0.406" || !strings.Contains(p.metadata["vggo.model"], tc.cfg.Arch) {
				t.Errorf("metadata %v", p.metadata)
			}
		})
	}
}

func TestWriteFileFails(t *testing.T) {
	m, err := graphs.New(graphs.Config{Arch: "vgg11", Mult: 1.0 / 64, InputH: 32})
	if err != nil {
		t.Fatal(err)
	}
	err = WriteFile(t.TempDir()+"/no/such/dir/m.onnx", m, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "onnx: write ") {
		t.Errorf("got %v, want an onnx: write error", err)
	}
}
