package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/internal/cpuinfo"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/train"
)

// BenchConfig describes one benchmark: a model, a batch shape and how many steps to time.
// The zero values of the optional fields take the defaults noted.
type BenchConfig struct {
	Model      graphs.Config `json:"model"`
	Batch      int           `json:"batch"`       // training batch; also the inference batch unless InferBatch
	InferBatch int           `json:"infer_batch"` // 0: Batch
	H, W       int           `json:"-"`           // input size; 0: the model's (Model.InputH/InputW)
	Steps      int           `json:"steps"`       // timed steps per phase; 0: 10
	Warmup     int           `json:"warmup"`      // untimed steps before them; 0: 2 (negative: none)
	SkipTrain  bool          `json:"skip_train,omitempty"`
	SkipInfer  bool          `json:"skip_infer,omitempty"`
	LR         float64       `json:"lr"`             // SGD learning rate; 0: 1e-3
	Gemm       string        `json:"gemm,omitempty"` // kernel family: avx512, avx2, generic; "": the fastest
}

// BenchResult is what Bench measured. Rates are medians over the timed steps. Phase
// splits are the mean milliseconds per step spent in each op kind (see ops.Kind) plus
// "framework": the rest of the step (Gorgonia's tape machine, gradient bookkeeping).
type BenchResult struct {
	Config         BenchConfig `json:"config"`
	Arch           string      `json:"arch"`
	H              int         `json:"h"`
	W              int         `json:"w"`
	CPU            string      `json:"cpu"`             // the processor's model name
	CPUGHz         float64     `json:"cpu_ghz"`         // its clock measured before the run (0: not measured here)
	Threads        int         `json:"threads"`         // GOMAXPROCS
	GemmKernel     string      `json:"gemm_kernel"`     // gemm.Kernel.Name()
	GFLOPPerImage  float64     `json:"gflop_per_image"` // conv+linear forward FLOPs per image / 1e9
	TrainStepMS    float64     `json:"train_step_ms"`   // median
	TrainImagesPS  float64     `json:"train_images_per_s"`
	TrainGFLOPS    float64     `json:"train_gflops"`  // 3 × forward FLOPs × images/s
	InferStepMS    float64     `json:"infer_step_ms"` // median
	InferImagesPS  float64     `json:"infer_images_per_s"`
	InferGFLOPS    float64     `json:"infer_gflops"` // forward FLOPs × images/s
	GFLOPS         float64     `json:"gflops"`       // TrainGFLOPS, or InferGFLOPS when training was skipped
	PeakRSSMiB     float64     `json:"peak_rss_mib"` // the process's maxrss: covers everything it ran before too
	TrainSplitMS   []KindTime  `json:"train_split_ms,omitempty"`
	InferSplitMS   []KindTime  `json:"infer_split_ms,omitempty"`
	TrainStepsMS   []float64   `json:"train_steps_ms,omitempty"` // every timed step, in order
	InferStepsMS   []float64   `json:"infer_steps_ms,omitempty"`
	TrainAllocsMiB float64     `json:"train_alloc_mib_per_step"` // Go heap bytes allocated per timed step
	InferAllocsMiB float64     `json:"infer_alloc_mib_per_step"`
	// Memory the graphs' plans hold: pooled activation buffers (ops.MemoryPlan) and
	// convolution scratch (ops.Workspace), MiB.
	TrainActivationsMiB float64 `json:"train_activations_mib"`
	TrainWorkspaceMiB   float64 `json:"train_workspace_mib"`
	InferActivationsMiB float64 `json:"infer_activations_mib"`
	InferWorkspaceMiB   float64 `json:"infer_workspace_mib"`
}

// KindTime is the mean time per step spent in one kind of op.
type KindTime struct {
	Kind string  `json:"kind"`
	MS   float64 `json:"ms"`
}

// FrameworkKind names the part of a step that no op accounts for.
const FrameworkKind = "framework"

func (c BenchConfig) normalized() (BenchConfig, error) {
	mc, info, err := c.Model.Normalize()
	if err != nil {
		return c, err
	}
	if c.H == 0 {
		c.H = mc.InputH
	}
	if c.W == 0 {
		c.W = mc.InputW
	}
	if info.Task == label.Segmentation {
		// Segmentation models take any size: the summary (and FLOP count) uses this one.
		mc.InputH, mc.InputW = c.H, c.W
	}
	c.Model = mc
	if c.Batch < 1 {
		return c, fmt.Errorf("bench: batch %d < 1", c.Batch)
	}
	if c.InferBatch == 0 {
		c.InferBatch = c.Batch
	}
	if c.InferBatch < 1 {
		return c, fmt.Errorf("bench: inference batch %d < 1", c.InferBatch)
	}
	if c.Steps == 0 {
		c.Steps = 10
	}
	if c.Steps < 1 {
		return c, fmt.Errorf("bench: steps %d < 1", c.Steps)
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = 2
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	if c.SkipTrain && c.SkipInfer {
		return c, errors.New("bench: both phases skipped; nothing to measure")
	}
	if err := info.CheckInput(c.H, c.W); err != nil {
		return c, err
	}
	return c, nil
}

// Bench measures a model's training speed (forward, backward and an SGD step on a fixed
// random batch) and inference speed (an evaluation graph, forward only), the time spent in
// each kind of op and the process's peak resident memory. Progress goes to log (may be
// nil). Timings are medians over cfg.Steps steps after cfg.Warmup untimed ones.
func Bench(ctx context.Context, cfg BenchConfig, log io.Writer) (*BenchResult, error) {
	if log == nil {
		log = io.Discard
	}
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	kern, err := gemm.Lookup(cfg.Gemm)
	if err != nil {
		return nil, err
	}
	flops, err := graphs.FLOPs(cfg.Model)
	if err != nil {
		return nil, err
	}
	res := &BenchResult{
		Config: cfg, Arch: cfg.Model.Arch, H: cfg.H, W: cfg.W,
		CPU: cpuinfo.Model(), CPUGHz: cpuinfo.GHz(50 * time.Millisecond),
		Threads: runtime.GOMAXPROCS(0), GemmKernel: kern.Name(),
		GFLOPPerImage: flops / 1e9,
	}
	m, err := graphs.New(cfg.Model)
	if err != nil {
		return nil, err
	}
	prof := ops.NewProfile()
	if !cfg.SkipTrain {
		fmt.Fprintf(log, "bench: %s %dx%d batch %d: training, %d+%d steps\n", cfg.Model.Arch, cfg.H, cfg.W, cfg.Batch, cfg.Warmup, cfg.Steps)
		steps, split, alloc, err := benchTrain(ctx, m, cfg, prof, res)
		if err != nil {
			return nil, err
		}
		med := median(steps)
		res.TrainStepsMS, res.TrainSplitMS, res.TrainAllocsMiB = ms(steps), split, alloc
		res.TrainStepMS = med.Seconds() * 1e3
		res.TrainImagesPS = float64(cfg.Batch) / med.Seconds()
		res.TrainGFLOPS = 3 * flops * res.TrainImagesPS / 1e9
		res.GFLOPS = res.TrainGFLOPS
		fmt.Fprintf(log, "bench: training: %.1f ms/step, %.2f images/s, %.0f GFLOP/s\n", res.TrainStepMS, res.TrainImagesPS, res.TrainGFLOPS)
	}
	// Let the training graph's buffers go before the evaluation graph allocates its own.
	runtime.GC()
	debug.FreeOSMemory()
	if !cfg.SkipInfer {
		fmt.Fprintf(log, "bench: %s %dx%d batch %d: inference, %d+%d steps\n", cfg.Model.Arch, cfg.H, cfg.W, cfg.InferBatch, cfg.Warmup, cfg.Steps)
		prof.Reset()
		steps, split, alloc, err := benchInfer(ctx, m, cfg, prof, res)
		if err != nil {
			return nil, err
		}
		med := median(steps)
		res.InferStepsMS, res.InferSplitMS, res.InferAllocsMiB = ms(steps), split, alloc
		res.InferStepMS = med.Seconds() * 1e3
		res.InferImagesPS = float64(cfg.InferBatch) / med.Seconds()
		res.InferGFLOPS = flops * res.InferImagesPS / 1e9
		if cfg.SkipTrain {
			res.GFLOPS = res.InferGFLOPS
		}
		fmt.Fprintf(log, "bench: inference: %.1f ms/step, %.2f images/s, %.0f GFLOP/s\n", res.InferStepMS, res.InferImagesPS, res.InferGFLOPS)
	}
	res.PeakRSSMiB = peakRSSMiB()
	return res, nil
}

// fillRandom writes N(0, 1) values into x, seeded.
func fillRandom(x []float32, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
}

// BenchPreset is a named benchmark configuration: the settings vggo is compared with
// PyTorch on.
type BenchPreset struct {
	Name string
	Doc  string
	Cfg  BenchConfig
	Big  bool // takes minutes: go test runs it only when -test.bench names it
}

// BenchPresets returns the configurations vggo is compared with PyTorch on: C1-C5 at
// full width, C6s/C6u at width 1/4, C7s/C7u the segmentation models' real setting (512x512,
// batch 8, full width).
func BenchPresets() []BenchPreset {
	return []BenchPreset{
		{"C1", "vgg16 224x224, train batch 4, inference batch 8", BenchConfig{Model: graphs.Config{Arch: "vgg16"}, Batch: 4, InferBatch: 8, H: 224, W: 224}, true},
		{"C2", "vgg19 224x224, batch 4", BenchConfig{Model: graphs.Config{Arch: "vgg19"}, Batch: 4, H: 224, W: 224}, true},
		{"C3", "alexnet 224x224, batch 16", BenchConfig{Model: graphs.Config{Arch: "alexnet"}, Batch: 16, H: 224, W: 224}, true},
		{"C4", "vgg16-segnet 21 classes 256x256, batch 2", BenchConfig{Model: graphs.Config{Arch: "vgg16-segnet"}, Batch: 2, H: 256, W: 256}, true},
		{"C5", "vgg19-unet 21 classes 256x256, batch 2", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet"}, Batch: 2, H: 256, W: 256}, true},
		{"C6s", "vgg16-segnet width 1/4 128x128, batch 4", BenchConfig{Model: graphs.Config{Arch: "vgg16-segnet", Mult: 0.25}, Batch: 4, H: 128, W: 128}, false},
		{"C6u", "vgg19-unet width 1/4 128x128, batch 4", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet", Mult: 0.25}, Batch: 4, H: 128, W: 128}, false},
		{"C7s", "vgg16-segnet 21 classes 512x512, batch 8", BenchConfig{Model: graphs.Config{Arch: "vgg16-segnet"}, Batch: 8, H: 512, W: 512}, true},
		{"C7u", "vgg19-unet 21 classes 512x512, batch 8", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet"}, Batch: 8, H: 512, W: 512}, true},
	}
}

// LookupBenchPreset returns the preset called name (case-insensitive).
func LookupBenchPreset(name string) (BenchPreset, error) {
	var names []string
	for _, p := range BenchPresets() {
		if strings.EqualFold(p.Name, name) {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return BenchPreset{}, fmt.Errorf("unknown benchmark config %q (valid: %s)", name, strings.Join(names, ", "))
}

// benchStep runs one training step of a session: forward, backward, SGD.
func benchStep(s *train.Session, opt train.Optimizer, params []train.Param, lr float64, prof *ops.Profile, i int) error {
	s.Model.SetStep(uint64(i))
	if err := s.Run(); err != nil {
		return fmt.Errorf("bench: step %d: %w", i, err)
	}
	if err := s.Gradients(params); err != nil {
		return err
	}
	t0 := prof.Start()
	if err := opt.Step(params, lr); err != nil {
		return err
	}
	prof.Stop(ops.KindOptimizer, t0)
	return nil
}

// newBenchTrain is a training session on a fixed random batch, with SGD.
func newBenchTrain(m *graphs.Model, cfg BenchConfig, prof *ops.Profile) (*train.Session, train.Optimizer, []train.Param, error) {
	kern, _ := gemm.Lookup(cfg.Gemm) // (checked by Bench)
	s, err := train.NewTrainSession(m, cfg.Batch, cfg.H, cfg.W, train.SessionOptions{Profile: prof, Gemm: kern})
	if err != nil {
		return nil, nil, nil, err
	}
	fillRandom(s.Input(), 1)
	r := rand.New(rand.NewPCG(7, 0x1abe1))
	for i, lab := 0, s.Labels(); i < len(lab); i++ {
		lab[i] = r.IntN(m.Config.Classes)
	}
	opt, err := train.NewOptimizer(train.DefaultOptimizerConfig("sgd"))
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	return s, opt, train.Params(m, false), nil
}

func benchTrain(ctx context.Context, m *graphs.Model, cfg BenchConfig, prof *ops.Profile, res *BenchResult) ([]time.Duration, []KindTime, float64, error) {
	s, opt, params, err := newBenchTrain(m, cfg, prof)
	if err != nil {
		return nil, nil, 0, err
	}
	defer s.Close()
	times, split, alloc, err := timeSteps(ctx, cfg, prof, func(i int) error { return benchStep(s, opt, params, cfg.LR, prof, i) })
	res.TrainActivationsMiB = float64(s.Plan.PoolFloats()) * 4 / (1 << 20)
	res.TrainWorkspaceMiB = float64(s.Graph.Workspace.Floats()) * 4 / (1 << 20)
	return times, split, alloc, err
}

func benchInfer(ctx context.Context, m *graphs.Model, cfg BenchConfig, prof *ops.Profile, res *BenchResult) ([]time.Duration, []KindTime, float64, error) {
	kern, _ := gemm.Lookup(cfg.Gemm) // (checked by Bench)
	s, err := train.NewEvalSession(m, cfg.InferBatch, cfg.H, cfg.W, train.SessionOptions{Profile: prof, Gemm: kern})
	if err != nil {
		return nil, nil, 0, err
	}
	defer s.Close()
	fillRandom(s.Input(), 2)
	times, split, alloc, err := timeSteps(ctx, cfg, prof, func(i int) error {
		if err := s.Run(); err != nil {
			return fmt.Errorf("bench: inference step %d: %w", i, err)
		}
		return nil
	})
	res.InferActivationsMiB = float64(s.Plan.PoolFloats()) * 4 / (1 << 20)
	res.InferWorkspaceMiB = float64(s.Graph.Workspace.Floats()) * 4 / (1 << 20)
	return times, split, alloc, err
}

// timeSteps runs cfg.Warmup untimed steps and cfg.Steps timed ones, and returns each
// timed step's duration, the mean split by op kind and the heap MiB allocated per step.
func timeSteps(ctx context.Context, cfg BenchConfig, prof *ops.Profile, step func(i int) error) ([]time.Duration, []KindTime, float64, error) {
	for i := range cfg.Warmup {
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, context.Cause(ctx)
		}
		if err := step(i); err != nil {
			return nil, nil, 0, err
		}
	}
	prof.Reset()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	times := make([]time.Duration, cfg.Steps)
	var total time.Duration
	for i := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, context.Cause(ctx)
		}
		t0 := time.Now()
		if err := step(cfg.Warmup + i); err != nil {
			return nil, nil, 0, err
		}
		times[i] = time.Since(t0)
		total += times[i]
	}
	runtime.ReadMemStats(&after)
	n := float64(cfg.Steps)
	var split []KindTime
	var counted time.Duration
	for k := range ops.NumKinds {
		if prof.Calls(k) == 0 {
			continue
		}
		d := prof.Time(k)
		counted += d
		split = append(split, KindTime{Kind: k.String(), MS: d.Seconds() * 1e3 / n})
	}
	split = append(split, KindTime{Kind: FrameworkKind, MS: (total - counted).Seconds() * 1e3 / n})
	alloc := float64(after.TotalAlloc-before.TotalAlloc) / n / (1 << 20)
	return times, split, alloc, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = v.Seconds() * 1e3
	}
	return out
}
