//go:build torchcheck

// Package torchcheck dumps vggo's logits and gradients for compare.py, which recomputes
// them with the PyTorch reference models: a side-by-side numerics check that needs
// Python and torch, so it is behind the torchcheck build tag and never runs in CI.
//
//	go test -tags torchcheck ./tools/torchcheck && python3 tools/torchcheck/compare.py
package torchcheck

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/losses"
)

// Cases must match compare.py's.
var cases = []struct {
	name    string
	cfg     graphs.Config
	n, h, w int
}{
	{"vgg16", graphs.Config{Arch: "vgg16", Mult: 0.125, InputH: 64, NoDrop: true, Classes: 10}, 3, 64, 64},
	{"alexnet", graphs.Config{Arch: "alexnet", Mult: 0.125, InputH: 99, NoDrop: true, Classes: 10}, 3, 99, 99},
	{"segnet", graphs.Config{Arch: "vgg16-segnet", Mult: 0.125}, 2, 64, 96},
	{"segnet-indices", graphs.Config{Arch: "vgg16-segnet", Mult: 0.125, Unpool: graphs.UnpoolIndices}, 2, 64, 96},
	{"unet", graphs.Config{Arch: "vgg19-unet", Mult: 0.125}, 2, 48, 80},
}

func write(t *testing.T, dir, name string, v any) {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
}

func TestDump(t *testing.T) {
	dir := os.Getenv("TORCHCHECK_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "vggo-torchcheck")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		m, err := graphs.New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Non-trivial batch-norm statistics and affine parameters.
		r := rand.New(rand.NewPCG(1, 2))
		for _, p := range m.Params {
			if len(p.Shape) == 1 && !(len(p.Name) > 5 && p.Name[len(p.Name)-5:] == ".bias") {
				for i := range p.Data {
					p.Data[i] = float32(0.5 + r.Float64())
				}
			}
		}
		var params []float32
		for _, p := range m.Params {
			params = append(params, p.Data...)
		}
		write(t, dir, c.name+".params", params)

		in := make([]float32, c.n*3*c.h*c.w)
		for i := range in {
			in[i] = float32(r.NormFloat64())
		}
		write(t, dir, c.name+".input", in)

		// Evaluation logits.
		eg, err := m.Build(c.n, c.h, c.w, graphs.Eval)
		if err != nil {
			t.Fatal(err)
		}
		copy(eg.InputT.Data().([]float32), in)
		evm := G.NewTapeMachine(eg.G)
		if err := evm.RunAll(); err != nil {
			t.Fatal(err)
		}
		write(t, dir, c.name+".eval", eg.Logits.Value().Data().([]float32))

		// One training forward/backward with cross-entropy (255 on every 7th pixel).
		gr, err := m.Build(c.n, c.h, c.w, graphs.Train)
		if err != nil {
			t.Fatal(err)
		}
		copy(gr.InputT.Data().([]float32), in)
		shape := []int{c.n}
		if m.Info.Task == label.Segmentation {
			shape = []int{c.n, c.h, c.w}
		}
		size := 1
		for _, s := range shape {
			size *= s
		}
		lab := make([]int, size)
		lab64 := make([]int64, size)
		for i := range lab {
			lab[i] = r.IntN(m.Config.Classes)
			if i%7 == 0 && m.Info.Task == label.Segmentation {
				lab[i] = 255
			}
			lab64[i] = int64(lab[i])
		}
		write(t, dir, c.name+".labels", lab64)
		ln := G.NewTensor(gr.G, tensor.Int, len(shape), G.WithShape(shape...),
			G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(lab))))
		loss, err := losses.CrossEntropy(gr.Logits, ln, losses.CEOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := G.Grad(loss, gr.Params...); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		var grads []float32
		for _, p := range gr.Params {
			g, err := p.Grad()
			if err != nil {
				t.Fatal(err)
			}
			grads = append(grads, g.Data().([]float32)...)
		}
		write(t, dir, c.name+".grads", grads)
		terms, err := losses.LastTerms(loss)
		if err != nil {
			t.Fatal(err)
		}
		write(t, dir, c.name+".loss", []float64{terms.Total})
		var bufs []float32
		for _, p := range m.Params {
			if !p.Trainable {
				bufs = append(bufs, p.Data...)
			}
		}
		write(t, dir, c.name+".buffers", bufs)
	}
	t.Logf("dumped %d models to %s", len(cases), dir)
}
