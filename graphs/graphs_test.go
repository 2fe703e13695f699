package graphs

import (
	"math"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The totals Keras's model.summary() prints for the same networks (batch norm's moving
// statistics counted as non-trainable) and torchvision's parameter counts.
func TestSummaryTotals(t *testing.T) {
	tests := []struct {
		cfg                            Config
		total, trainable, nonTrainable int
	}{
		{Config{Arch: "vgg16"}, 138_357_544, 138_357_544, 0},
		{Config{Arch: "vgg19"}, 143_667_240, 143_667_240, 0},
		{Config{Arch: "alexnet"}, 61_640_936, 61_640_936, 0},
		{Config{Arch: "vgg16-segnet", InputH: 512}, 29_460_329, 29_444_415, 15_914},
		{Config{Arch: "vgg16-segnet", Unpool: UnpoolIndices}, 29_460_329, 29_444_415, 15_914},
		{Config{Arch: "vgg19-unet", InputH: 512}, 30_202_133, 30_202_133, 0},
		// torchvision: vgg11 132,863,336; vgg13 133,047,848; vgg16_bn 138,365,992; vgg19_bn 143,678,248
		// (trainable); the running statistics add 2 numbers per batch-norm channel.
		{Config{Arch: "vgg11"}, 132_863_336, 132_863_336, 0},
		{Config{Arch: "vgg13"}, 133_047_848, 133_047_848, 0},
		{Config{Arch: "vgg16-bn"}, 138_365_992 + 2*4224, 138_365_992, 2 * 4224},
		{Config{Arch: "vgg19_bn"}, 143_678_248 + 2*5504, 143_678_248, 2 * 5504},
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Arch+tt.cfg.Unpool, func(t *testing.T) {
			s, err := Summarize(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.Total != tt.total || s.Trainable != tt.trainable || s.NonTrainable != tt.nonTrainable {
				t.Errorf("got total %d trainable %d non-trainable %d, want %d %d %d",
					s.Total, s.Trainable, s.NonTrainable, tt.total, tt.trainable, tt.nonTrainable)
			}
			var b strings.Builder
			if err := s.Print(&b); err != nil {
				t.Fatal(err)
			}
			if want := "Total params: " + Commas(tt.total); !strings.Contains(b.String(), want) {
				t.Errorf("printed summary lacks %q:\n%s", want, b.String())
			}
		})
	}
}

func TestSummaryOutputShapes(t *testing.T) {
	tests := []struct {
		cfg  Config
		want []int
	}{
		{Config{Arch: "vgg16"}, []int{1, 1000}},
		{Config{Arch: "alexnet"}, []int{1, 1000}},
		{Config{Arch: "vgg16-segnet"}, []int{1, 21, 512, 512}},
		{Config{Arch: "vgg16-segnet", Unpool: UnpoolIndices, InputH: 256, InputW: 384}, []int{1, 21, 256, 384}},
		{Config{Arch: "vgg19-unet", InputH: 128, InputW: 96, Classes: 5}, []int{1, 5, 128, 96}},
	}
	for _, tt := range tests {
		s, err := Summarize(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Rows[len(s.Rows)-1].Shape
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: output shape %v, want %v", tt.cfg.Arch, got, tt.want)
		}
	}
}

// AlexNet's first convolution pads 'same' the TensorFlow way: 3 before and 4 after at 224.
func TestAlexNetShapes(t *testing.T) {
	s, err := Summarize(Config{Arch: "alexnet"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"conv1": {1, 96, 56, 56}, "pool1": {1, 96, 27, 27}, "pool2": {1, 256, 13, 13}, "pool5": {1, 256, 6, 6}, "flatten": {1, 9216}}
	for _, r := range s.Rows {
		if w, ok := want[r.Layer]; ok && !slices.Equal(r.Shape, w) {
			t.Errorf("%s: shape %v, want %v", r.Layer, r.Shape, w)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Arch: "resnet50"}, "valid: alexnet, vgg11"},
		{Config{Arch: "vgg16", Mult: 0.3}, "not 1/k"},
		{Config{Arch: "vgg16", Mult: 2}, "out of range"},
		{Config{Arch: "vgg19-unet", InputH: 100}, "multiple of 16"},
		{Config{Arch: "vgg16-segnet", InputH: 48}, "multiple of 32"},
		{Config{Arch: "vgg16", Unpool: "indices"}, "vgg16-segnet only"},
		{Config{Arch: "vgg16-segnet", Unpool: "bilinear"}, "valid: upsample, indices"},
		{Config{Arch: "vgg16-segnet", Classes: 300}, "out of range"},
		{Config{Arch: "vgg19-unet", Dropout: 0.3}, "no dropout"},
		{Config{Arch: "alexnet", InputH: 40}, "too small"},
	}
	for _, tt := range tests {
		_, _, err := tt.cfg.Normalize()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one containing %q", tt.cfg, err, tt.want)
		}
	}
}

func TestNamesFollowPyTorch(t *testing.T) {
	tests := []struct {
		cfg   Config
		names []string
	}{
		{Config{Arch: "vgg16", Mult: 0.125}, []string{"features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.6.bias"}},
		{Config{Arch: "vgg16-bn", Mult: 0.125}, []string{"features.1.running_var", "features.41.bias", "classifier.3.weight"}},
		{Config{Arch: "vgg16-segnet", Mult: 0.125}, []string{"encoder.0.weight", "encoder.1.running_mean", "encoder.41.weight",
			"decoder.1.weight", "decoder.2.running_var", "decoder.41.weight", "decoder.42.running_var"}},
		{Config{Arch: "vgg19-unet", Mult: 0.125}, []string{"b1.0.weight", "b1.2.bias", "b5.6.weight", "u4.0.weight", "u1.2.bias", "head.weight"}},
		{Config{Arch: "alexnet", Mult: 0.125}, []string{"conv1.weight", "conv5.bias", "classifier.6.weight"}},
	}
	for _, tt := range tests {
		specs, err := Specs(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, s := range specs {
			have[s.Name] = true
		}
		for _, n := range tt.names {
			if !have[n] {
				t.Errorf("%s: no parameter %s", tt.cfg.Arch, n)
			}
		}
	}
}

func TestInitIsSeeded(t *testing.T) {
	a, err := New(Config{Arch: "vgg19-unet", Mult: 0.125, InputH: 32, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Config{Arch: "vgg19-unet", Mult: 0.125, InputH: 32, Seed: 7})
	c, _ := New(Config{Arch: "vgg19-unet", Mult: 0.125, InputH: 32, Seed: 8})
	w := a.Param("b1.0.weight").Data
	if !slices.Equal(w, b.Param("b1.0.weight").Data) {
		t.Error("same seed gave different weights")
	}
	if slices.Equal(w, c.Param("b1.0.weight").Data) {
		t.Error("different seeds gave equal weights")
	}
	// Kaiming normal, fan_out = 8*3*3: std sqrt(2/72) = 0.1667.
	var ss float64
	for _, v := range w {
		ss += float64(v) * float64(v)
	}
	if std := math.Sqrt(ss / float64(len(w))); std < 0.12 || std > 0.21 {
		t.Errorf("b1.0.weight std %.3f, want about 0.167", std)
	}
	for _, v := range a.Param("b1.0.bias").Data {
		if v != 0 {
			t.Fatal("bias not zero")
		}
	}
}

// buildRun builds a model's training graph, attaches cost = sum(logits ⊙ R) and runs one
// forward and backward pass.
func buildRun(t *testing.T, m *Model, batch, h, w int) (*Graph, G.VM) {
	t.Helper()
	gr, err := m.Build(batch, h, w, Train)
	if err != nil {
		t.Fatal(err)
	}
	in := gr.InputT.Data().([]float32)
	for i := range in {
		in[i] = float32((i*7919)%201)/100 - 1
	}
	shape := gr.Logits.Shape()
	r := make([]float32, shape.TotalSize())
	for i := range r {
		r[i] = float32((i*104729)%97)/48 - 1
	}
	rn := G.NewTensor(gr.G, tensor.Float32, shape.Dims(), G.WithShape(shape...), G.WithName("R"),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(r))))
	prod, err := G.HadamardProd(gr.Logits, rn)
	if err != nil {
		t.Fatal(err)
	}
	cost, err := G.Sum(prod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(cost, gr.Params...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	return gr, vm
}

// Every model at width 1/8 runs forward and backward, gives logits of the right shape and
// a non-zero gradient to every parameter.
func TestForwardBackwardAllModels(t *testing.T) {
	tests := []struct {
		cfg   Config
		h, w  int
		batch int
		want  []int
	}{
		{Config{Arch: "vgg11", InputH: 32, Classes: 10}, 32, 32, 2, []int{2, 10}},
		{Config{Arch: "vgg16", InputH: 32, Classes: 10}, 32, 32, 2, []int{2, 10}},
		{Config{Arch: "vgg19-bn", InputH: 32, Classes: 10}, 32, 32, 2, []int{2, 10}},
		{Config{Arch: "alexnet", InputH: 67, InputW: 75, Classes: 7}, 67, 75, 2, []int{2, 7}},
		{Config{Arch: "vgg16-segnet", InputH: 32}, 32, 64, 2, []int{2, 21, 32, 64}},
		{Config{Arch: "vgg16-segnet", InputH: 32, Unpool: UnpoolIndices}, 64, 32, 2, []int{2, 21, 64, 32}},
		{Config{Arch: "vgg19-unet", InputH: 32}, 48, 32, 2, []int{2, 21, 48, 32}},
	}
	for _, tt := range tests {
		name := tt.cfg.Arch + tt.cfg.Unpool
		t.Run(name, func(t *testing.T) {
			tt.cfg.Mult = 0.125
			tt.cfg.Seed = 1
			m, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			gr, vm := buildRun(t, m, tt.batch, tt.h, tt.w)
			defer vm.Close()
			if got := []int(gr.Logits.Shape()); !slices.Equal(got, tt.want) {
				t.Fatalf("logits shape %v, want %v", got, tt.want)
			}
			for i, p := range m.Trainable() {
				gv, err := gr.Params[i].Grad()
				if err != nil {
					t.Fatalf("%s: %v", p.Name, err)
				}
				if allZero(gv.Data().([]float32)) {
					t.Errorf("%s: zero gradient", p.Name)
				}
			}
		})
	}
}

// A training graph and an evaluation graph built from one model read the same weights.
func TestGraphsShareParameters(t *testing.T) {
	m, err := New(Config{Arch: "vgg19-unet", Mult: 0.125, InputH: 32, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	run := func() []float32 {
		gr, err := m.Build(1, 32, 32, Eval)
		if err != nil {
			t.Fatal(err)
		}
		in := gr.InputT.Data().([]float32)
		for i := range in {
			in[i] = float32(i%13) / 13
		}
		vm := G.NewTapeMachine(gr.G)
		defer vm.Close()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), gr.Logits.Value().Data().([]float32)...)
	}
	before := run()
	tr, err := m.Build(1, 32, 32, Train)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Params[0].Value().Data().([]float32)[0] != m.Trainable()[0].Data[0] {
		t.Fatal("training graph does not read the model's tensor")
	}
	m.Param("head.bias").Data[0] += 1 // as an optimizer would, in place
	after := run()
	if after[0]-before[0] < 0.999 || after[0]-before[0] > 1.001 {
		t.Errorf("evaluation graph did not see the in-place update: %g -> %g", before[0], after[0])
	}
}

func allZero(a []float32) bool {
	for _, v := range a {
		if v != 0 {
			return false
		}
	}
	return true
}
