package train

import (
	"context"
	"encoding/json"
	"flag"
	"regexp"
	"strings"
	"testing"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
)

// TestBenchTiny runs Bench on a tiny model and checks the result's structure (never
// timings).
func TestBenchTiny(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       BenchConfig
		wantTrain bool
		wantInfer bool
	}{
		{"unet both", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet", Mult: 1.0 / 16}, Batch: 2, H: 32, W: 32, Steps: 2, Warmup: -1}, true, true},
		{"segnet infer only", BenchConfig{Model: graphs.Config{Arch: "vgg16-segnet", Mult: 1.0 / 16}, Batch: 1, InferBatch: 2, H: 32, W: 32, Steps: 1, SkipTrain: true}, false, true},
		{"vgg11 train only", BenchConfig{Model: graphs.Config{Arch: "vgg11", Mult: 1.0 / 32, InputH: 32, Classes: 10}, Batch: 2, Steps: 1, SkipInfer: true}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			res, err := Bench(context.Background(), tc.cfg, &log)
			if err != nil {
				t.Fatal(err)
			}
			if res.GFLOPPerImage <= 0 || res.PeakRSSMiB <= 0 || res.Threads < 1 || res.GemmKernel == "" {
				t.Errorf("got gflop/image %v, peak RSS %v, threads %d, kernel %q: want all set", res.GFLOPPerImage, res.PeakRSSMiB, res.Threads, res.GemmKernel)
			}
			steps := res.Config.Steps
			// check requires of a phase that ran: positive rates, every step timed, and
			// conv, framework and the given kinds in the split.
			check := func(phase string, want bool, rate, gflops float64, stepsMS []float64, split []KindTime, kinds ...string) {
				if !want {
					if rate != 0 || len(stepsMS) != 0 || len(split) != 0 {
						t.Errorf("%s: skipped phase has results: rate %v, %d steps, split %v", phase, rate, len(stepsMS), split)
					}
					return
				}
				if rate <= 0 || gflops <= 0 || len(stepsMS) != steps {
					t.Errorf("%s: got rate %v, gflops %v, %d step times; want positive, positive, %d", phase, rate, gflops, len(stepsMS), steps)
				}
				have := map[string]bool{}
				for _, k := range split {
					have[k.Kind] = true
				}
				for _, k := range append([]string{"conv", FrameworkKind}, kinds...) {
					if !have[k] {
						t.Errorf("%s: split %v has no %q", phase, split, k)
					}
				}
			}
			check("train", tc.wantTrain, res.TrainImagesPS, res.TrainGFLOPS, res.TrainStepsMS, res.TrainSplitMS, "loss", "optimizer")
			check("infer", tc.wantInfer, res.InferImagesPS, res.InferGFLOPS, res.InferStepsMS, res.InferSplitMS)
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]any
			if err := json.Unmarshal(b, &keys); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"train_images_per_s", "infer_images_per_s", "gflops", "peak_rss_mib"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("JSON has no key %q: %s", k, b)
				}
			}
			if !strings.Contains(log.String(), "bench: ") {
				t.Errorf("nothing logged: %q", log.String())
			}
		})
	}
}

func TestBenchErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  BenchConfig
		want string
	}{
		{"no batch", BenchConfig{Model: graphs.Config{Arch: "vgg11"}}, "batch 0"},
		{"unknown model", BenchConfig{Model: graphs.Config{Arch: "resnet"}, Batch: 1}, "unknown model"},
		{"nothing to do", BenchConfig{Model: graphs.Config{Arch: "vgg11"}, Batch: 1, SkipTrain: true, SkipInfer: true}, "nothing to measure"},
		{"bad size", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet"}, Batch: 1, H: 30, W: 30}, "multiple of 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Bench(context.Background(), tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Bench(ctx, BenchConfig{Model: graphs.Config{Arch: "vgg19-unet", Mult: 1.0 / 16}, Batch: 1, H: 16, W: 16}, nil); err == nil {
		t.Error("cancelled context: got no error")
	}
	if _, err := LookupBenchPreset("C9"); err == nil {
		t.Error("LookupBenchPreset(C9): got no error")
	}
}

func TestModelFLOPs(t *testing.T) {
	// VGG16 at 224: 15.47 GFLOP forward (2·MACs), the usual figure.
	got, err := ModelFLOPs(graphs.Config{Arch: "vgg16"})
	if err != nil {
		t.Fatal(err)
	}
	if got < 30.9e9 || got > 31.0e9 {
		t.Errorf("vgg16 forward FLOPs %.4g, want 2 x 15.47 GMAC = 3.094e10", got)
	}
}

// benchSelected tells whether the -test.bench pattern names a big preset explicitly.
func benchSelected(name string) bool {
	f := flag.Lookup("test.bench")
	if f == nil {
		return false
	}
	pat := f.Value.String()
	return regexp.MustCompile(`(?i)\b` + regexp.QuoteMeta(name) + `\b`).MatchString(pat)
}

// presetModel skips a big preset that -bench does not name, and returns the preset's
// normalized configuration and its model.
func presetModel(b *testing.B, p BenchPreset) (BenchConfig, *graphs.Model) {
	b.Helper()
	if p.Big && !benchSelected(p.Name) {
		b.Skip("big config: name it in -bench to run it")
	}
	cfg, err := p.Cfg.normalized()
	if err != nil {
		b.Fatal(err)
	}
	m, err := graphs.New(cfg.Model)
	if err != nil {
		b.Fatal(err)
	}
	return cfg, m
}

// BenchmarkTrain times one training step (forward, backward, SGD) of each preset. The
// big presets (C1-C5) run only when -bench names them: go test -bench 'Train/C1$' -benchtime 5x.
func BenchmarkTrain(b *testing.B) {
	for _, p := range BenchPresets() {
		b.Run(p.Name, func(b *testing.B) {
			cfg, m := presetModel(b, p)
			s, err := newTrainSession(m, cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			if err := s.step(0); err != nil { // warm-up: first-run allocation
				b.Fatal(err)
			}
			flops, _ := ModelFLOPs(cfg.Model)
			b.ReportAllocs()
			b.ResetTimer()
			i := 1
			for b.Loop() {
				_ = s.step(i)
				i++
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(cfg.Batch)/sec, "images/s")
			b.ReportMetric(3*flops*float64(cfg.Batch)/sec/1e9, "GFLOP/s")
			b.ReportMetric(peakRSSMiB(), "peakRSS-MiB")
		})
	}
}

// BenchmarkInfer times one forward pass of each preset's evaluation graph.
func BenchmarkInfer(b *testing.B) {
	for _, p := range BenchPresets() {
		b.Run(p.Name, func(b *testing.B) {
			cfg, m := presetModel(b, p)
			s, err := newInferSession(m, cfg, (*ops.Profile)(nil))
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			if err := s.step(0); err != nil {
				b.Fatal(err)
			}
			flops, _ := ModelFLOPs(cfg.Model)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = s.step(0)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(cfg.InferBatch)/sec, "images/s")
			b.ReportMetric(flops*float64(cfg.InferBatch)/sec/1e9, "GFLOP/s")
			b.ReportMetric(peakRSSMiB(), "peakRSS-MiB")
		})
	}
}
