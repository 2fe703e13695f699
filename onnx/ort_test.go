//go:build onnxruntime

package onnx

// The exported models against a real runtime: onnxruntime through onnxruntime-node.
// Needs node and the onnxruntime-node package on NODE_PATH; .ci/run installs both:
//
//	NODE_PATH=$HOME/.cache/vggo/ort/node_modules go test -tags onnxruntime -run ORT -v ./onnx
//
// VGGO_ORT_SEED_SIZES=1 runs the five seed models at their own input sizes (224x224,
// 512x512) too: slow, for measurements.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/train"
)

type ortCase struct {
	name string
	cfg  graphs.Config
	n    int
	h, w int // the input run (segmenters: may differ from the configured size)
}

func ortCases() []ortCase {
	var cs []ortCase
	// Every architecture at a small width; SegNet with both unpooling modes; the
	// segmenters at a non-square size other than the one they were built for.
	for _, arch := range graphs.Names() {
		info, _ := graphs.Lookup(arch)
		size := 32
		if arch == "alexnet" {
			size = 66 // conv1 pads 4 top, 5 bottom: TensorFlow's odd pixel
		}
		c := ortCase{name: arch + "/w16", cfg: graphs.Config{Arch: arch, Mult: 1.0 / 16, InputH: size, Classes: 10}, n: 3, h: size, w: size}
		if info.Task == label.Segmentation {
			c.cfg.InputH = 64
			c.h, c.w = 64, 96
		}
		cs = append(cs, c)
		if arch == "vgg16-segnet" {
			c.name, c.cfg.Unpool = arch+"-indices/w16", graphs.UnpoolIndices
			cs = append(cs, c)
		}
	}
	// The five seed models at full width, at small inputs.
	cs = append(cs,
		ortCase{name: "vgg16/full", cfg: graphs.Config{Arch: "vgg16", InputH: 32}, n: 2, h: 32, w: 32},
		ortCase{name: "vgg19/full", cfg: graphs.Config{Arch: "vgg19", InputH: 32}, n: 2, h: 32, w: 32},
		ortCase{name: "alexnet/full", cfg: graphs.Config{Arch: "alexnet", InputH: 64}, n: 2, h: 64, w: 64},
		ortCase{name: "vgg16-segnet/full", cfg: graphs.Config{Arch: "vgg16-segnet"}, n: 1, h: 64, w: 64},
		ortCase{name: "vgg19-unet/full", cfg: graphs.Config{Arch: "vgg19-unet"}, n: 1, h: 64, w: 64},
	)
	if os.Getenv("VGGO_ORT_SEED_SIZES") != "" {
		cs = append(cs,
			ortCase{name: "vgg16/seed", cfg: graphs.Config{Arch: "vgg16"}, n: 1, h: 224, w: 224},
			ortCase{name: "vgg19/seed", cfg: graphs.Config{Arch: "vgg19"}, n: 1, h: 224, w: 224},
			ortCase{name: "alexnet/seed", cfg: graphs.Config{Arch: "alexnet"}, n: 1, h: 224, w: 224},
			ortCase{name: "vgg16-segnet/seed", cfg: graphs.Config{Arch: "vgg16-segnet"}, n: 1, h: 512, w: 512},
			ortCase{name: "vgg19-unet/seed", cfg: graphs.Config{Arch: "vgg19-unet"}, n: 1, h: 512, w: 512},
		)
	}
	return cs
}

// perturb gives the biases and batch norms values other than their initial 0s and 1s,
// so that the export of each is checked.
func perturb(m *graphs.Model, r *rand.Rand) {
	uniform := func(v []float32, lo, hi float64) {
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
	}
	for _, p := range m.Params {
		switch {
		case strings.HasSuffix(p.Name, ".running_mean"), strings.HasSuffix(p.Name, ".bias"):
			uniform(p.Data, -0.1, 0.1)
		case strings.HasSuffix(p.Name, ".running_var"):
			uniform(p.Data, 0.5, 2)
		case strings.HasSuffix(p.Name, ".weight") && len(p.Shape) == 1:
			uniform(p.Data, 0.5, 1.5)
		}
	}
}

func TestORT(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found (Debian: apt-get install nodejs npm; .ci/run installs it)")
	}
	script, err := filepath.Abs("testdata/ort_run.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ortCases() {
		t.Run(c.name, func(t *testing.T) {
			m, err := graphs.New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			perturb(m, r)
			dir := t.TempDir()
			path := filepath.Join(dir, "m.onnx")
			start := time.Now()
			if err := WriteFile(path, m, Options{}); err != nil {
				t.Fatal(err)
			}
			exportTime := time.Since(start)
			st, _ := os.Stat(path)

			x := make([]float32, c.n*3*c.h*c.w)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			ev := train.NewEvaluator(m)
			defer ev.Close()
			start = time.Now()
			want, err := ev.Logits(x, c.n, c.h, c.w)
			if err != nil {
				t.Fatal(err)
			}
			vggoTime := time.Since(start)

			in, out := filepath.Join(dir, "x.f32"), filepath.Join(dir, "y.f32")
			if err := os.WriteFile(in, f32Bytes(x), 0o644); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			cmd := exec.Command(node, script, path, in, fmt.Sprintf("%d,3,%d,%d", c.n, c.h, c.w), out)
			res, err := cmd.Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("onnxruntime: %v: %s (is onnxruntime-node on NODE_PATH? .ci/run installs it)", err, stderr)
			}
			ortTime := time.Since(start)
			var info struct {
				Dims    []int    `json:"dims"`
				Inputs  []string `json:"inputs"`
				Outputs []string `json:"outputs"`
			}
			if err := json.Unmarshal(res, &info); err != nil {
				t.Fatalf("node printed %q: %v", res, err)
			}
			wantDims := []int{c.n, m.Config.Classes}
			if m.Info.Task == label.Segmentation {
				wantDims = append(wantDims, c.h, c.w)
			}
			if !slices.Equal(info.Dims, wantDims) || !slices.Equal(info.Inputs, []string{InputName}) || !slices.Equal(info.Outputs, []string{OutputName}) {
				t.Fatalf("onnxruntime: %+v, want dims %v, input %q, output %q", info, wantDims, InputName, OutputName)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(raw)/4)
			for i := range got {
				got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			if len(got) != len(want) {
				t.Fatalf("onnxruntime gave %d logits, vggo %d", len(got), len(want))
			}
			var maxAbs, maxDiff float64
			for i := range want {
				maxAbs = max(maxAbs, math.Abs(float64(want[i])))
				maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
			}
			agree, total := argmaxAgreement(got, want, wantDims)
			t.Logf("%s: export %v, %.1f MB; vggo %v, onnxruntime %v; max |logit| %.4g, max |diff| %.3g (%.2g relative); argmax equal %d/%d",
				c.name, exportTime.Round(time.Millisecond), float64(st.Size())/1e6, vggoTime.Round(time.Millisecond), ortTime.Round(time.Millisecond),
				maxAbs, maxDiff, maxDiff/maxAbs, agree, total)
			if maxDiff > 1e-4*maxAbs {
				t.Errorf("max |onnxruntime - vggo| = %g, want <= 1e-4 × max |logit| = %g", maxDiff, 1e-4*maxAbs)
			}
			if float64(agree) < 0.999*float64(total) {
				t.Errorf("argmax equal on %d of %d, want >= 99.9%%", agree, total)
			}
		})
	}
}

// argmaxAgreement counts the images (N, C) or pixels (N, C, H, W) where the classes of
// highest logit agree.
func argmaxAgreement(a, b []float32, dims []int) (agree, total int) {
	n, c, hw := dims[0], dims[1], 1
	for _, d := range dims[2:] {
		hw *= d
	}
	for i := 0; i < n; i++ {
		for p := 0; p < hw; p++ {
			ba, bb := 0, 0
			for k := 1; k < c; k++ {
				at := (i*c+k)*hw + p
				if a[at] > a[(i*c+ba)*hw+p] {
					ba = k
				}
				if b[at] > b[(i*c+bb)*hw+p] {
					bb = k
				}
			}
			if ba == bb {
				agree++
			}
			total++
		}
	}
	return agree, total
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
