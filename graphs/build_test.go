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

// TestConvChains checks which convolutions pass their output channels-last to the next
// (ops.ConvConfig.ChannelsLastOut): every 3x3 Winograd convolution whose one reader is
// another, in training and evaluation graphs; none across a pooling, a skip connection,
// a batch norm or the 3-channel first layer (im2col).
func TestConvChains(t *testing.T) {
	for _, tc := range []struct {
		arch        string
		train, eval int
	}{
		// Blocks 2-5 (block 1's first layer reads the image), then the four decoder
		// levels' concatenating convolutions.
		{"vgg19-unet", 1 + 3 + 3 + 3 + 4, 1 + 3 + 3 + 3 + 4},
		{"vgg16", 1 + 2 + 2 + 2, 1 + 2 + 2 + 2},
		// Batch norm after every convolution: no chains.
		{"vgg16-segnet", 0, 0},
	} {
		cfg := Config{Arch: tc.arch, Mult: 0.25, InputH: 32, InputW: 32, Seed: 1}
		if tc.arch != "vgg16" {
			cfg.Classes = 21
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []Mode{Train, Eval} {
			gr, err := m.Build(2, 32, 32, mode)
			if err != nil {
				t.Fatalf("%s %v: %v", tc.arch, mode, err)
			}
			chains := 0
			for _, node := range gr.G.AllNodes() {
				if node.Op() != nil && strings.HasPrefix(node.Op().String(), "Conv2D{") && strings.Contains(node.Op().String(), "chain-out") {
					chains++
				}
			}
			want := tc.train
			if mode == Eval {
				want = tc.eval
			}
			if chains != want {
				t.Errorf("%s %v: %d chained convolutions, want %d", tc.arch, mode, chains, want)
			}
		}
	}
}
