// Package onnx writes vggo models as ONNX files (https://onnx.ai/onnx/repo-docs/IR.html),
// opset 13, for onnxruntime, OpenVINO, TensorRT and other runtimes.
//
// The graph is the model in evaluation mode: input "input", float32 (N, 3, H, W),
// normalised as vggo normalises images ((pixel/255 - mean)/std per RGB channel, with
// ImageNet's mean and std, see InputMean and InputStd); output "logits", (N, classes)
// for classifiers, (N, classes, H, W) for segmentation models. N is dynamic, and so
// are H and W for the segmentation models (multiples of their stride); classifiers
// take the input size they were built for. Dropout is left out; batch norm is
// BatchNormalization with the running statistics; 'same' padding is written as
// explicit pads (TensorFlow's: an odd pixel goes bottom/right); SegNet's upsampling is
// Resize (nearest), its max-unpooling MaxPool's Indices output and MaxUnpool; U-Net's
// skips are Concat. Parameters are initializers named as vggo names them (the
// PyTorch state_dict keys).
//
// The protobuf is written with google.golang.org/protobuf/encoding/protowire, the
// weights streamed from the model's memory without a copy.
package onnx

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/internal/atomicfile"
	"github.com/vggo/vggo/label"
)

// Opset is the ONNX operator set version the files use; IRVersion its IR version.
const (
	Opset     = 13
	IRVersion = 7
)

// InputMean and InputStd are the per-channel (R, G, B) normalisation of the input, in
// units of the 0..1 pixel range: the ImageNet constants vggo's data transforms use.
var (
	InputMean = [3]float32{0.485, 0.456, 0.406}
	InputStd  = [3]float32{0.229, 0.224, 0.225}
)

// Input and output names.
const (
	InputName  = "input"
	OutputName = "logits"
)

// Options add to what Write stores.
type Options struct {
	ClassNames []string // stored as metadata "vggo.class_names" (JSON)
	Producer   string   // producer_version, e.g. vggo's version; "" for none
}

// WriteFile writes the model to path atomically (see Write).
func WriteFile(path string, m *graphs.Model, opt Options) error {
	err := atomicfile.WriteFile(path, func(w io.Writer) error { return Write(w, m, opt) })
	if err != nil {
		return fmt.Errorf("onnx: write %s: %w", path, err)
	}
	return nil
}

// Write writes the model as an ONNX ModelProto to w.
func Write(w io.Writer, m *graphs.Model, opt Options) error {
	g, err := buildGraph(m)
	if err != nil {
		return err
	}
	var md [][2]string
	cfg, _ := json.Marshal(m.Config)
	md = append(md, [2]string{"vggo.model", string(cfg)})
	if len(opt.ClassNames) > 0 {
		names, _ := json.Marshal(opt.ClassNames)
		md = append(md, [2]string{"vggo.class_names", string(names)})
	}
	md = append(md,
		[2]string{"vggo.input_mean", floats(InputMean)},
		[2]string{"vggo.input_std", floats(InputStd)},
		[2]string{"vggo.input_layout", "NCHW RGB, (pixel/255 - mean)/std"})

	var head []byte
	head = appendInt(head, modelIRVersion, IRVersion)
	head = appendString(head, modelProducerName, "vggo")
	if opt.Producer != "" {
		head = appendString(head, modelProducerVer, opt.Producer)
	}
	head = appendString(head, modelDocString, fmt.Sprintf("%s, exported by vggo: input %q (N,3,H,W) normalised with mean %s and std %s; output %q", m.Config.Arch, InputName, floats(InputMean), floats(InputStd), OutputName))
	opset := appendString(nil, opsetDomain, "")
	opset = appendInt(opset, opsetVersion, Opset)
	head = appendBytes(head, modelOpsetImport, opset)
	for _, kv := range md {
		e := appendString(nil, entryKey, kv[0])
		e = appendString(e, entryValue, kv[1])
		head = appendBytes(head, modelMetadataProps, e)
	}
	head = protowire.AppendTag(head, modelGraph, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(g.size()))

	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.Write(head); err != nil {
		return err
	}
	if err := g.writeTo(bw); err != nil {
		return err
	}
	return bw.Flush()
}

func floats(v [3]float32) string {
	return fmt.Sprintf("%g,%g,%g", v[0], v[1], v[2])
}

// initializer is a TensorProto: an encoded header, then raw data that is either the
// model's float32 memory (f32) or small encoded bytes (raw).
type initializer struct {
	header []byte
	f32    []float32
	raw    []byte
}

func (in *initializer) dataLen() int {
	if in.f32 != nil {
		return 4 * len(in.f32)
	}
	return len(in.raw)
}

// graph holds an encoded GraphProto in pieces.
type graph struct {
	body  []byte // nodes, name, inputs, outputs
	inits []initializer
}

func (g *graph) size() int {
	n := len(g.body)
	for _, in := range g.inits {
		l := len(in.header) + in.dataLen()
		n += protowire.SizeTag(graphInitializer) + protowire.SizeBytes(l)
	}
	return n
}

func (g *graph) writeTo(w io.Writer) error {
	if _, err := w.Write(g.body); err != nil {
		return err
	}
	var scratch []byte
	for _, in := range g.inits {
		b := protowire.AppendTag(nil, graphInitializer, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(len(in.header)+in.dataLen()))
		b = append(b, in.header...)
		if _, err := w.Write(b); err != nil {
			return err
		}
		switch {
		case in.f32 == nil:
			if _, err := w.Write(in.raw); err != nil {
				return err
			}
		case nativeLittleEndian:
			if len(in.f32) > 0 {
				if _, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&in.f32[0])), 4*len(in.f32))); err != nil {
					return err
				}
			}
		default:
			for v := in.f32; len(v) > 0; {
				k := min(len(v), 1<<14)
				scratch = float32RawInto(scratch[:0], v[:k])
				if _, err := w.Write(scratch); err != nil {
					return err
				}
				v = v[k:]
			}
		}
	}
	return nil
}

// builder turns the layer list into nodes.
type builder struct {
	m      *graphs.Model
	layers []graphs.Layer
	out    []string // the value name of each layer's output
	nodes  []byte
	inits  []initializer
	seen   map[string]bool // initializers added
	// pooled marks the MaxPool layers whose indices an unpooling uses.
	pooled map[int]bool
}

func buildGraph(m *graphs.Model) (*graph, error) {
	layers, err := m.Layers()
	if err != nil {
		return nil, err
	}
	b := &builder{m: m, layers: layers, out: make([]string, len(layers)), seen: map[string]bool{}, pooled: map[int]bool{}}
	seg := m.Info.Task == label.Segmentation
	for _, l := range layers {
		if l.Kind == graphs.LayerMaxUnpool {
			b.pooled[l.Inputs[1]] = true
		}
		if seg && l.Kind == graphs.LayerConv && l.Stride != 1 {
			// Dynamic H and W rely on every convolution padding the same at any size.
			return nil, fmt.Errorf("onnx: %s: layer %s has stride %d; dynamic sizes need stride 1", m.Config.Arch, l.Name, l.Stride)
		}
	}
	for i, l := range layers {
		if err := b.layer(i, l); err != nil {
			return nil, fmt.Errorf("onnx: %s: layer %s: %w", m.Config.Arch, l.Name, err)
		}
	}
	last := len(layers) - 1
	if b.out[last] != OutputName {
		return nil, fmt.Errorf("onnx: %s: the last layer %s does not produce the logits", m.Config.Arch, layers[last].Name)
	}

	// Graph inputs and outputs.
	n := dim{param: "N"}
	h, w := dim{value: m.Config.InputH}, dim{value: m.Config.InputW}
	if seg {
		h, w = dim{param: "H"}, dim{param: "W"}
	}
	outDims := []dim{n, {value: m.Config.Classes}}
	if seg {
		outDims = append(outDims, h, w)
	}
	body := b.nodes
	body = appendString(body, graphName, m.Config.Arch)
	body = appendBytes(body, graphInput, valueInfo(InputName, []dim{n, {value: 3}, h, w}))
	body = appendBytes(body, graphOutput, valueInfo(OutputName, outDims))
	return &graph{body: body, inits: b.inits}, nil
}

// param adds the model parameter called name as an initializer and returns its name.
func (b *builder) param(name string) (string, error) {
	if b.seen[name] {
		return name, nil
	}
	p := b.m.Param(name)
	if p == nil {
		return "", fmt.Errorf("no parameter %s", name)
	}
	b.seen[name] = true
	b.inits = append(b.inits, initializer{header: tensorHeader(name, dataFloat, p.Shape, 4*len(p.Data)), f32: p.Data})
	return name, nil
}

// constant adds a small initializer.
func (b *builder) constant(name string, dataType int, dims []int, raw []byte) string {
	if !b.seen[name] {
		b.seen[name] = true
		b.inits = append(b.inits, initializer{header: tensorHeader(name, dataType, dims, len(raw)), raw: raw})
	}
	return name
}

func (b *builder) add(op, name string, inputs, outputs []string, attrs ...attribute) {
	b.nodes = appendBytes(b.nodes, graphNode, node(op, name, inputs, outputs, attrs...))
}

// valueName names layer i's output: "logits" for the last layer, else its display name.
func (b *builder) valueName(i int) string {
	if i == len(b.layers)-1 {
		return OutputName
	}
	return b.layers[i].Name
}

// finish sets layer i's output to out, or adds the ReLU fused into the layer after it.
func (b *builder) finish(i int, l graphs.Layer, out string) {
	if !l.ReLU {
		b.out[i] = out
		return
	}
	b.out[i] = l.Name + "_relu"
	if i == len(b.layers)-1 {
		b.out[i] = OutputName
	}
	b.add("Relu", l.Name+"_relu", []string{out}, []string{b.out[i]})
}

func (b *builder) layer(i int, l graphs.Layer) error {
	in := func(k int) string { return b.out[l.Inputs[k]] }
	out := b.valueName(i)
	if l.ReLU {
		out = l.Name // the fused ReLU's input
	}
	switch l.Kind {
	case graphs.LayerInput:
		b.out[i] = InputName
		return nil
	case graphs.LayerConv:
		wn, err := b.param(l.Module + ".weight")
		if err != nil {
			return err
		}
		bn, err := b.param(l.Module + ".bias")
		if err != nil {
			return err
		}
		b.add("Conv", l.Name, []string{in(0), wn, bn}, []string{out},
			attrIntList("kernel_shape", l.Kernel, l.Kernel),
			attrIntList("strides", l.Stride, l.Stride),
			attrIntList("pads", l.Pad.Top, l.Pad.Left, l.Pad.Bottom, l.Pad.Right),
			attrIntList("dilations", 1, 1),
			attrInt("group", 1))
		b.finish(i, l, out)
	case graphs.LayerBatchNorm:
		var names []string
		for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
			n, err := b.param(l.Module + "." + s)
			if err != nil {
				return err
			}
			names = append(names, n)
		}
		b.add("BatchNormalization", l.Name, append([]string{in(0)}, names...), []string{out},
			attrFloat("epsilon", float32(l.Eps)))
		b.finish(i, l, out)
	case graphs.LayerReLU:
		b.add("Relu", l.Name, []string{in(0)}, []string{out})
		b.out[i] = out
	case graphs.LayerMaxPool:
		outs := []string{out}
		if b.pooled[i] {
			outs = append(outs, l.Name+"_indices")
		}
		b.add("MaxPool", l.Name, []string{in(0)}, outs,
			attrIntList("kernel_shape", l.Kernel, l.Kernel),
			attrIntList("strides", l.Stride, l.Stride),
			attrIntList("pads", 0, 0, 0, 0))
		b.out[i] = out
	case graphs.LayerMaxUnpool:
		pool := b.layers[l.Inputs[1]]
		if pool.Kind != graphs.LayerMaxPool {
			return fmt.Errorf("unpools %s, not a max pooling", pool.Name)
		}
		// The output takes the size of the pooling's input, as vggo's unpooling does.
		shape := l.Name + "_shape"
		b.add("Shape", shape, []string{b.out[pool.Inputs[0]]}, []string{shape})
		b.add("MaxUnpool", l.Name, []string{in(0), pool.Name + "_indices", shape}, []string{out},
			attrIntList("kernel_shape", pool.Kernel, pool.Kernel),
			attrIntList("strides", pool.Stride, pool.Stride))
		b.out[i] = out
	case graphs.LayerUpsample:
		s := float32(l.Scale)
		scales := b.constant(fmt.Sprintf("resize_scales_x%d", l.Scale), dataFloat, []int{4}, float32Raw(1, 1, s, s))
		b.add("Resize", l.Name, []string{in(0), "", scales}, []string{out},
			attrString("mode", "nearest"),
			attrString("coordinate_transformation_mode", "asymmetric"),
			attrString("nearest_mode", "floor"))
		b.out[i] = out
	case graphs.LayerConcat:
		var ins []string
		for k := range l.Inputs {
			ins = append(ins, in(k))
		}
		b.add("Concat", l.Name, ins, []string{out}, attrInt("axis", 1))
		b.out[i] = out
	case graphs.LayerFlatten:
		b.add("Flatten", l.Name, []string{in(0)}, []string{out}, attrInt("axis", 1))
		b.out[i] = out
	case graphs.LayerLinear:
		wn, err := b.param(l.Module + ".weight")
		if err != nil {
			return err
		}
		bn, err := b.param(l.Module + ".bias")
		if err != nil {
			return err
		}
		b.add("Gemm", l.Name, []string{in(0), wn, bn}, []string{out}, attrInt("transB", 1))
		b.out[i] = out
	case graphs.LayerDropout:
		if i == len(b.layers)-1 {
			b.add("Identity", l.Name, []string{in(0)}, []string{out})
			b.out[i] = out
		} else {
			b.out[i] = in(0) // the identity in evaluation
		}
	default:
		return fmt.Errorf("layer kind %q has no ONNX mapping", l.Kind)
	}
	return nil
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func float32RawInto(b []byte, vs []float32) []byte {
	return append(b, float32Raw(vs...)...)
}
