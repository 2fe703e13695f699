package graphs

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/label"
)

// Graph is a model built for one input shape and mode.
type Graph struct {
	G      *G.ExprGraph
	Mode   Mode
	Batch  int
	H, W   int
	Input  *G.Node       // (Batch, 3, H, W); its value is InputT
	InputT *tensor.Dense // write the batch into InputT's backing before running
	Logits *G.Node       // (Batch, classes) or (Batch, classes, H, W)
	Params []*G.Node     // trainable parameter nodes, in the order of Model.Trainable()
	// Workspace is the scratch memory the graph's convolutions share.
	Workspace *ops.Workspace
	// Gemm is the matrix-multiplication kernel family of its convolutions and fully
	// connected layers (WithGemm).
	Gemm gemm.Kernel
}

// BuildOption is an option of Model.Build.
type BuildOption func(*buildOptions)

type buildOptions struct {
	gemm gemm.Kernel
}

// WithGemm makes the graph's convolutions and fully connected layers multiply with the
// kernel family k (gemm.Lookup) instead of the fastest this CPU supports: for
// benchmarks and for comparing results across CPUs.
func WithGemm(k gemm.Kernel) BuildOption { return func(o *buildOptions) { o.gemm = k } }

// Build makes the model's expression graph for batch images of h×w pixels. Classifiers
// accept only their configured input size (it fixes the first fully connected layer);
// segmentation models accept any size that is a multiple of their stride.
func (m *Model) Build(batch, h, w int, mode Mode, opts ...BuildOption) (*Graph, error) {
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	if batch < 1 {
		return nil, fmt.Errorf("graphs: %s: batch %d < 1", m.Config.Arch, batch)
	}
	if err := m.Info.CheckInput(h, w); err != nil {
		return nil, err
	}
	if m.Info.Task == label.Classification && (h != m.Config.InputH || w != m.Config.InputW) {
		return nil, fmt.Errorf("graphs: %s: built for %dx%d inputs, got %dx%d (the first fully connected layer fixes the size)",
			m.Config.Arch, m.Config.InputH, m.Config.InputW, h, w)
	}
	g := G.NewGraph()
	n := &net{cfg: m.Config, info: m.Info, g: g, m: m, mode: mode, nodes: map[string]*G.Node{}, argmax: map[string]*ops.Argmax{}, ws: ops.NewWorkspace(), gemm: o.gemm}
	in := n.input(batch, h, w)
	out := m.Info.build(n, in)
	if n.err != nil {
		return nil, n.err
	}
	gr := &Graph{G: g, Mode: mode, Batch: batch, H: h, W: w, Input: in.node, Logits: n.nodeOf(out), Workspace: n.ws, Gemm: o.gemm}
	gr.InputT = tensor.New(tensor.WithShape(batch, 3, h, w), tensor.Of(tensor.Float32))
	if err := G.Let(in.node, gr.InputT); err != nil {
		return nil, fmt.Errorf("graphs: bind input: %w", err)
	}
	for _, p := range m.Trainable() {
		node := n.nodes[p.Name]
		if node == nil {
			return nil, fmt.Errorf("graphs: %s: parameter %s not used by the graph", m.Config.Arch, p.Name)
		}
		gr.Params = append(gr.Params, node)
	}
	return gr, nil
}
