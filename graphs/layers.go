package graphs

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/graphs/ops/gemm"
)

// act is an activation flowing through the builder: its shape always, its node when a
// graph is being built.
type act struct {
	node    *G.Node
	shape   []int        // NCHW, or (N, features) after Flatten
	pending *pendingConv // a convolution left for the next batch norm to fold in (node is nil)
	// parts: an upsampling or a concatenation left for the convolution that reads it to
	// fuse in (ops.Conv2DConcat; node is nil). Any other reader makes the node (nodeOf).
	parts []ops.ConvPart
	// chain: a 3x3 same-size Winograd convolution left for its reader to make (node is
	// nil): channels-last (ops.ConvConfig.ChannelsLastOut) for a convolution of the same
	// kind, NCHW for any other reader (nodeOf).
	chain *chainConv
	id    int // the index of the layer that made it, in net.layers
}

// chainConv is a convolution made when its reader is known, once: node and out (made
// channels-last) are set then.
type chainConv struct {
	x, w, b *G.Node
	parts   []ops.ConvPart // in place of x: a Conv2DConcat
	cfg     ops.ConvConfig
	layer   string
	node    *G.Node
	out     bool
}

// nodeOf returns x's node, making the upsamplings and concatenation x.parts stands for
// if need be.
func (n *net) nodeOf(x act) *G.Node {
	if x.chain != nil {
		return n.chainNode(x.chain, false)
	}
	if x.parts == nil || n.err != nil {
		return x.node
	}
	xs := make([]*G.Node, len(x.parts))
	for i, p := range x.parts {
		up, err := ops.Upsample2D(p.X, p.Up)
		if n.wrap("upsample", err) {
			return nil
		}
		xs[i] = up
	}
	y, err := ops.Concat(xs...)
	if n.wrap("concat", err) {
		return nil
	}
	return y
}

// chainNode makes the convolution c stands for, channels-last when out (for a
// convolution that reads it so), unless it is made already. Its first reader decides:
// no reader can take NCHW what a first one took channels-last (the zoo's convolutions
// inside a block have one reader each).
func (n *net) chainNode(c *chainConv, out bool) *G.Node {
	if n.err != nil {
		return nil
	}
	if c.node != nil {
		if c.out && !out {
			n.fail("%s: internal: output read in NCHW after a convolution took it channels-last", c.layer)
			return nil
		}
		return c.node
	}
	cfg := c.cfg
	cfg.ChannelsLastOut = out
	var y *G.Node
	var err error
	if c.parts != nil {
		y, err = ops.Conv2DConcat(c.parts, c.w, c.b, cfg)
	} else {
		y, err = ops.Conv2D(c.x, c.w, c.b, cfg)
	}
	if n.wrap(c.layer, err) {
		return nil
	}
	c.node, c.out = y, out
	return y
}

// partsOf returns x as the parts of a concatenation.
func (n *net) partsOf(x act) []ops.ConvPart {
	if x.parts != nil {
		return x.parts
	}
	return []ops.ConvPart{{X: n.nodeOf(x), Up: 1}}
}

// pendingConv is what Conv2DBatchNorm needs of a convolution.
type pendingConv struct {
	x, w, b *G.Node
	cfg     ops.ConvConfig
}

type paramSpec struct {
	name      string
	shape     []int
	trainable bool
	noDecay   bool
	init      initKind
	fan       int
}

// Row is one line of a model summary.
type Row struct {
	Layer  string // Keras-like display name (block1_conv1)
	Module string // PyTorch module path (features.0); empty for parameter-free glue
	Type   string
	Shape  []int // output shape; Shape[0] is the batch
	Params int   // Keras count: batch norm counts its running statistics too
}

// net is the layer vocabulary. The zoo's builders call its methods top to bottom like a
// Keras functional model. Without a graph it only infers shapes and collects parameter
// specs and summary rows (nothing is allocated); with a graph it also makes nodes over the
// model's parameter tensors. The first error sticks and turns later calls into no-ops, so
// the zoo reads as a plain list of layers.
type net struct {
	cfg  Config
	info ArchInfo

	// build mode (g != nil)
	g      *G.ExprGraph
	m      *Model
	mode   Mode
	nodes  map[string]*G.Node // parameter nodes by name
	argmax map[string]*ops.Argmax
	ws     *ops.Workspace // scratch shared by the graph's convolutions
	gemm   gemm.Kernel    // the matrix-multiplication kernels of its convolutions and linear layers
	in     *G.Node        // the input images

	params     []paramSpec
	bnLayers   []string
	dropLayers []string
	rows       []Row
	layers     []Layer        // the layer list (see Layers)
	poolAt     map[string]int // pooling layers kept for unpooling, by key
	err        error
}

func (n *net) fail(format string, args ...any) {
	if n.err == nil {
		n.err = fmt.Errorf("graphs: "+n.cfg.Arch+": "+format, args...)
	}
}

func (n *net) wrap(layer string, err error) bool {
	if err != nil && n.err == nil {
		n.err = fmt.Errorf("graphs: %s: %s: %w", n.cfg.Arch, layer, err)
	}
	return n.err != nil
}

func (n *net) row(layer, module, typ string, shape []int, params int) {
	n.rows = append(n.rows, Row{Layer: layer, Module: module, Type: typ, Shape: append([]int(nil), shape...), Params: params})
}

// param declares (spec mode) or fetches (build mode) a parameter or buffer.
func (n *net) param(ps paramSpec) *G.Node {
	n.params = append(n.params, ps)
	if n.g == nil || !ps.trainable {
		return nil // spec mode; buffers live in the batch-norm state, not in the graph
	}
	p := n.m.byName[ps.name]
	if p == nil || !slices.Equal(p.Shape, ps.shape) {
		n.fail("parameter %s missing or reshaped", ps.name)
		return nil
	}
	node := G.NewTensor(n.g, tensor.Float32, len(ps.shape), G.WithShape(ps.shape...), G.WithValue(p.T), G.WithName(ps.name))
	n.nodes[ps.name] = node
	return node
}

func (n *net) input(batch, h, w int) act {
	x := act{shape: []int{batch, 3, h, w}}
	if n.g != nil {
		x.node = G.NewTensor(n.g, tensor.Float32, 4, G.WithShape(batch, 3, h, w), G.WithName("input"))
		n.in = x.node
	}
	n.row("input", "", "Input", x.shape, 0)
	x.id = n.record(Layer{Kind: LayerInput, Name: "input"}, x.shape)
	return x
}

// conv is a 2-D convolution with bias; pad nil means TensorFlow 'same'.
func (n *net) conv(x act, module, layer string, cout, k, stride int, pad *ops.Padding) act {
	return n.convAct(x, module, layer, "", cout, k, stride, pad, false)
}

// convBN is conv, then batch norm, then (reluLayer != "") ReLU. Evaluation graphs fold the
// batch norm into the convolution (ops.Conv2DBatchNorm); training graphs use a
// convolution and a fused batch norm + ReLU.
func (n *net) convBN(x act, module, layer, bnModule, bnLayer, reluLayer string, cout, k, stride int, pad *ops.Padding) act {
	y := n.convAct(x, module, layer, "", cout, k, stride, pad, n.g != nil && n.mode == Eval)
	return n.batchNormAct(y, bnModule, bnLayer, reluLayer)
}

// convReLU is conv followed by a ReLU (summary row reluLayer), computed by one fused op.
func (n *net) convReLU(x act, module, layer, reluLayer string, cout, k, stride int, pad *ops.Padding) act {
	return n.convAct(x, module, layer, reluLayer, cout, k, stride, pad, false)
}

// convAct declares and (with a graph) builds a convolution; with fold it leaves the node
// to the batch norm that follows (act.pending).
func (n *net) convAct(x act, module, layer, reluLayer string, cout, k, stride int, pad *ops.Padding, fold bool) act {
	if n.err != nil {
		return x
	}
	if len(x.shape) != 4 {
		n.fail("%s: conv needs a 4-D input, got %v", layer, x.shape)
		return x
	}
	cin, h, w := x.shape[1], x.shape[2], x.shape[3]
	p := ops.SamePadding(h, w, k, k, stride, stride)
	if pad != nil {
		p = *pad
	}
	ho := ops.ConvOutSize(h, k, stride, p.Top, p.Bottom)
	wo := ops.ConvOutSize(w, k, stride, p.Left, p.Right)
	if ho < 1 || wo < 1 {
		n.fail("%s: input %dx%d too small for a %dx%d/%d convolution", layer, h, w, k, k, stride)
		return x
	}
	wn := n.param(paramSpec{name: module + ".weight", shape: []int{cout, cin, k, k}, trainable: true, init: initKaiming, fan: cout * k * k})
	bn := n.param(paramSpec{name: module + ".bias", shape: []int{cout}, trainable: true, noDecay: true, init: initZero})
	y := act{shape: []int{x.shape[0], cout, ho, wo}}
	if n.g != nil {
		var err error
		cfg := ops.ConvConfig{StrideH: stride, StrideW: stride, Pad: p, ReLU: reluLayer != "", Workspace: n.ws, Gemm: n.gemm,
			// The image needs no gradient: skip the first layer's backward convolution.
			NoInputGrad: x.node == n.in}
		// A convolution that can pass its output channels-last to the next one's (no
		// gather or scatter between the layouts) is left for its reader to make.
		chainable := !fold && ops.ChainableConv(x.shape, cout, k, stride, p, cfg)
		switch {
		case fold:
			y.pending = &pendingConv{x: n.nodeOf(x), w: wn, b: bn, cfg: cfg}
		case chainable:
			c := &chainConv{w: wn, b: bn, cfg: cfg, layer: layer, parts: x.parts}
			switch {
			case x.parts != nil:
			case x.chain != nil:
				c.x = n.chainNode(x.chain, true)
			default:
				c.x = x.node
			}
			y.chain = c
		case x.parts != nil:
			y.node, err = ops.Conv2DConcat(x.parts, wn, bn, cfg)
		default:
			y.node, err = ops.Conv2D(n.nodeOf(x), wn, bn, cfg)
		}
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, module, "Conv2D", y.shape, cout*cin*k*k+cout)
	y.id = n.record(Layer{Kind: LayerConv, Name: layer, Module: module, Inputs: []int{x.id}, Kernel: k, Stride: stride, Pad: p, ReLU: reluLayer != ""}, y.shape)
	if reluLayer != "" {
		n.row(reluLayer, "", "ReLU", y.shape, 0)
	}
	return y
}

func (n *net) batchNormAct(x act, module, layer, reluLayer string) act {
	if n.err != nil {
		return x
	}
	c := x.shape[1]
	gamma := n.param(paramSpec{name: module + ".weight", shape: []int{c}, trainable: true, noDecay: true, init: initOne})
	beta := n.param(paramSpec{name: module + ".bias", shape: []int{c}, trainable: true, noDecay: true, init: initZero})
	n.param(paramSpec{name: module + ".running_mean", shape: []int{c}, init: initZero})
	n.param(paramSpec{name: module + ".running_var", shape: []int{c}, init: initOne})
	n.bnLayers = append(n.bnLayers, module)
	y := act{shape: x.shape}
	if n.g != nil {
		var err error
		switch {
		case x.pending != nil:
			cfg := x.pending.cfg
			cfg.ReLU = reluLayer != ""
			y.node, err = ops.Conv2DBatchNorm(x.pending.x, x.pending.w, x.pending.b, gamma, beta, n.m.bn[module], cfg)
		case reluLayer != "":
			y.node, err = ops.BatchNormReLU2D(n.nodeOf(x), gamma, beta, n.m.bn[module], n.mode == Train)
		default:
			y.node, err = ops.BatchNorm2D(n.nodeOf(x), gamma, beta, n.m.bn[module], n.mode == Train)
		}
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, module, "BatchNorm", y.shape, 4*c)
	y.id = n.record(Layer{Kind: LayerBatchNorm, Name: layer, Module: module, Inputs: []int{x.id}, ReLU: reluLayer != ""}, y.shape)
	if reluLayer != "" {
		n.row(reluLayer, "", "ReLU", y.shape, 0)
	}
	return y
}

func (n *net) relu(x act, layer string) act {
	if n.err != nil {
		return x
	}
	y := act{shape: x.shape}
	if n.g != nil {
		var err error
		y.node, err = ops.ReLU(n.nodeOf(x))
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, "", "ReLU", y.shape, 0)
	y.id = n.record(Layer{Kind: LayerReLU, Name: layer, Inputs: []int{x.id}}, y.shape)
	return y
}

// maxPool pools k×k with stride s (no padding, floor). With key != "" it keeps the
// argmax indices under that key for a later unpool.
func (n *net) maxPool(x act, layer string, k, s int, key string) act {
	if n.err != nil {
		return x
	}
	h, w := x.shape[2], x.shape[3]
	ho, wo := (h-k)/s+1, (w-k)/s+1
	if h < k || w < k {
		n.fail("%s: input %dx%d too small for %dx%d pooling", layer, h, w, k, k)
		return x
	}
	y := act{shape: []int{x.shape[0], x.shape[1], ho, wo}}
	if n.g != nil {
		var idx *ops.Argmax
		if key != "" {
			idx = ops.NewArgmax(layer)
			n.argmax[key] = idx
		}
		var err error
		y.node, err = ops.MaxPool2D(n.nodeOf(x), ops.PoolConfig{KH: k, KW: k, StrideH: s, StrideW: s}, idx)
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, "", "MaxPool2D", y.shape, 0)
	y.id = n.record(Layer{Kind: LayerMaxPool, Name: layer, Inputs: []int{x.id}, Kernel: k, Stride: s}, y.shape)
	if key != "" {
		n.keepPool(key, y.id)
	}
	return y
}

// unpool reverses the pooling recorded under key back to h×w.
func (n *net) unpool(x act, layer, key string, h, w int) act {
	if n.err != nil {
		return x
	}
	y := act{shape: []int{x.shape[0], x.shape[1], h, w}}
	if n.g != nil {
		idx := n.argmax[key]
		if idx == nil {
			n.fail("%s: no pooling indices recorded under %q", layer, key)
			return x
		}
		var err error
		y.node, err = ops.MaxUnpool2D(n.nodeOf(x), idx, h, w)
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, "", "MaxUnpool2D", y.shape, 0)
	y.id = n.record(Layer{Kind: LayerMaxUnpool, Name: layer, Inputs: []int{x.id, n.poolAt[key]}}, y.shape)
	return y
}

func (n *net) upsample(x act, layer string) act {
	if n.err != nil {
		return x
	}
	y := act{shape: []int{x.shape[0], x.shape[1], 2 * x.shape[2], 2 * x.shape[3]}}
	if n.g != nil {
		// Made by the convolution that reads it, or by nodeOf.
		y.parts = []ops.ConvPart{{X: n.nodeOf(x), Up: 2}}
	}
	n.row(layer, "", "UpSampling2D", y.shape, 0)
	y.id = n.record(Layer{Kind: LayerUpsample, Name: layer, Inputs: []int{x.id}, Scale: 2}, y.shape)
	return y
}

func (n *net) concat(layer string, a, b act) act {
	if n.err != nil {
		return a
	}
	if a.shape[0] != b.shape[0] || a.shape[2] != b.shape[2] || a.shape[3] != b.shape[3] {
		n.fail("%s: cannot concatenate %v and %v", layer, a.shape, b.shape)
		return a
	}
	y := act{shape: []int{a.shape[0], a.shape[1] + b.shape[1], a.shape[2], a.shape[3]}}
	if n.g != nil {
		// Made by the convolution that reads it, or by nodeOf.
		y.parts = append(slices.Clone(n.partsOf(a)), n.partsOf(b)...)
	}
	n.row(layer, "", "Concatenate", y.shape, 0)
	y.id = n.record(Layer{Kind: LayerConcat, Name: layer, Inputs: []int{a.id, b.id}}, y.shape)
	return y
}

func (n *net) flatten(x act, layer string) act {
	if n.err != nil {
		return x
	}
	y := act{shape: []int{x.shape[0], prod(x.shape[1:])}}
	if n.g != nil {
		var err error
		y.node, err = ops.Flatten(n.nodeOf(x))
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, "", "Flatten", y.shape, 0)
	y.id = n.record(Layer{Kind: LayerFlatten, Name: layer, Inputs: []int{x.id}}, y.shape)
	return y
}

func (n *net) linear(x act, module, layer string, out int) act {
	if n.err != nil {
		return x
	}
	in := x.shape[1]
	wn := n.param(paramSpec{name: module + ".weight", shape: []int{out, in}, trainable: true, init: initLinear})
	bn := n.param(paramSpec{name: module + ".bias", shape: []int{out}, trainable: true, noDecay: true, init: initZero})
	y := act{shape: []int{x.shape[0], out}}
	if n.g != nil {
		var err error
		y.node, err = ops.Linear(n.nodeOf(x), wn, bn, ops.LinearConfig{Gemm: n.gemm})
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, module, "Dense", y.shape, out*in+out)
	y.id = n.record(Layer{Kind: LayerLinear, Name: layer, Module: module, Inputs: []int{x.id}}, y.shape)
	return y
}

func (n *net) dropout(x act, module, layer string) act {
	if n.err != nil || n.cfg.Dropout == 0 {
		return x
	}
	n.dropLayers = append(n.dropLayers, module)
	y := act{shape: x.shape}
	if n.g != nil {
		var err error
		y.node, err = ops.Dropout(n.nodeOf(x), n.cfg.Dropout, n.m.drop[module], n.mode == Train)
		if n.wrap(layer, err) {
			return x
		}
	}
	n.row(layer, module, fmt.Sprintf("Dropout(%g)", n.cfg.Dropout), y.shape, 0)
	y.id = n.record(Layer{Kind: LayerDropout, Name: layer, Module: module, Inputs: []int{x.id}}, y.shape)
	return y
}
