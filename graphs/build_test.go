package graphs

import (
	"strings"
	"testing"

	"github.com/vggo/vggo/graphs/ops/gemm"
)

// TestWithGemm: the kernel family chosen at build time reaches every convolution and
// fully connected layer (their op strings, which are also their hashes, name it).
func TestWithGemm(t *testing.T) {
	k, err := gemm.Lookup("generic")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Arch: "vgg11", Mult: 0.125, InputH: 32, Classes: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts []BuildOption
		want string // in every Conv2D and Linear op's string; "" means no gemm= at all
	}{
		{nil, ""},
		{[]BuildOption{WithGemm(k)}, "gemm=generic"},
	} {
		gr, err := m.Build(2, 32, 32, Train, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if gr.Gemm != (gemm.Kernel{}) && tc.want == "" || tc.want != "" && gr.Gemm.Name() != "generic" {
			t.Errorf("opts %v: Graph.Gemm = %v", tc.opts, gr.Gemm)
		}
		n := 0
		for _, node := range gr.G.AllNodes() {
			if node.Op() == nil {
				continue // an input or a parameter
			}
			s := node.Op().String()
			if !strings.HasPrefix(s, "Conv2D{") && !strings.HasPrefix(s, "Linear") {
				continue
			}
			n++
			if has := strings.Contains(s, "gemm="); tc.want == "" && has || tc.want != "" && !strings.Contains(s, tc.want) {
				t.Errorf("op %s: want %q in it", s, tc.want)
			}
		}
		if n == 0 {
			t.Fatal("no Conv2D or Linear op found")
		}
	}
}

// TestUNetDecoderFused: in U-Net's training and evaluation graphs, each decoder level's
// upsampling and concatenation are fused into its first convolution (ops.Conv2DConcat):
// no Upsample2D or Concat op is left, and four convolutions read their parts.
func TestUNetDecoderFused(t *testing.T) {
	m, err := New(Config{Arch: "vgg19-unet", Mult: 0.25, InputH: 32, InputW: 32, Classes: 21, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Mode{Train, Eval} {
		gr, err := m.Build(2, 32, 32, mode)
		if err != nil {
			t.Fatal(err)
		}
		fused := 0
		for _, node := range gr.G.AllNodes() {
			if node.Op() == nil {
				continue
			}
			s := node.Op().String()
			if strings.HasPrefix(s, "Upsample2D") || strings.HasPrefix(s, "Concat") {
				t.Errorf("mode %v: op %s left in the graph", mode, s)
			}
			if strings.HasPrefix(s, "Conv2D{") && strings.Contains(s, "parts[") {
				fused++
			}
		}
		if fused != 4 {
			t.Errorf("mode %v: %d fused decoder convolutions, want 4", mode, fused)
		}
	}
}
