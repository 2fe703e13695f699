package train

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

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/losses"
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
	LR         float64       `json:"lr"` // SGD learning rate; 0: 1e-3
}

// BenchResult is what Bench measured. Rates are medians over the timed steps. Phase
// splits are the mean milliseconds per step spent in each op kind (see ops.Kind) plus
// "framework": the rest of the step (Gorgonia's tape machine, gradient bookkeeping).
type BenchResult struct {
	Config         BenchConfig `json:"config"`
	Arch           string      `json:"arch"`
	H              int         `json:"h"`
	W              int         `json:"w"`
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
	if info.Task == graphs.Segmentation {
		// Segmentation models take any size: the summary (and FLOP count) uses this one.
		mc.InputH, mc.InputW = c.H, c.W
	}
	c.Model = mc
	if c.Batch < 1 {
		return c, fmt.Errorf("train: bench: batch %d < 1", c.Batch)
	}
	if c.InferBatch == 0 {
		c.InferBatch = c.Batch
	}
	if c.InferBatch < 1 {
		return c, fmt.Errorf("train: bench: inference batch %d < 1", c.InferBatch)
	}
	if c.Steps == 0 {
		c.Steps = 10
	}
	if c.Steps < 1 {
		return c, fmt.Errorf("train: bench: steps %d < 1", c.Steps)
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
		return c, errors.New("train: bench: both phases skipped; nothing to measure")
	}
	if err := info.CheckInput(c.H, c.W); err != nil {
		return c, err
	}
	return c, nil
}

// ModelFLOPs returns the forward FLOPs per image of cfg's convolutions and fully
// connected layers: 2·Cout·Cin·kH·kW·Ho·Wo per convolution, 2·Out·In per linear layer.
// Batch norm, pooling, activations and the loss are not counted.
func ModelFLOPs(cfg graphs.Config) (float64, error) {
	s, err := graphs.Summarize(cfg)
	if err != nil {
		return 0, err
	}
	specs, err := graphs.Specs(cfg)
	if err != nil {
		return 0, err
	}
	weights := map[string][]int{}
	for _, p := range specs {
		weights[p.Name] = p.Shape
	}
	var flops float64
	for _, r := range s.Rows {
		w := weights[r.Module+".weight"]
		switch r.Type {
		case "Conv2D":
			if len(w) != 4 || len(r.Shape) != 4 {
				return 0, fmt.Errorf("train: flops: %s: weight %v, output %v", r.Layer, w, r.Shape)
			}
			flops += 2 * float64(w[0]*w[1]*w[2]*w[3]) * float64(r.Shape[2]*r.Shape[3])
		case "Dense":
			if len(w) != 2 {
				return 0, fmt.Errorf("train: flops: %s: weight %v", r.Layer, w)
			}
			flops += 2 * float64(w[0]*w[1])
		}
	}
	return flops, nil
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
	flops, err := ModelFLOPs(cfg.Model)
	if err != nil {
		return nil, err
	}
	res := &BenchResult{
		Config: cfg, Arch: cfg.Model.Arch, H: cfg.H, W: cfg.W,
		Threads: runtime.GOMAXPROCS(0), GemmKernel: gemm.Kernel{}.Name(),
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

// benchLabels returns the labels node of a training graph, random classes.
func benchLabels(m *graphs.Model, gr *graphs.Graph) *G.Node {
	shape := []int{gr.Batch}
	if m.Info.Task == graphs.Segmentation {
		shape = []int{gr.Batch, gr.H, gr.W}
	}
	t := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Int))
	r := rand.New(rand.NewPCG(7, 0x1abe1))
	for i, lab := 0, t.Ints(); i < len(lab); i++ {
		lab[i] = r.IntN(m.Config.Classes)
	}
	return G.NewTensor(gr.G, tensor.Int, len(shape), G.WithShape(shape...), G.WithValue(t), G.WithName("labels"))
}

// BenchPreset is a named benchmark configuration of issue 7's table.
type BenchPreset struct {
	Name string
	Doc  string
	Cfg  BenchConfig
	Big  bool // takes minutes: go test runs it only when -test.bench names it
}

// BenchPresets returns the configurations PyTorch was measured on (issue 7): C1-C5 at
// full width, C6s/C6u at width 1/4.
func BenchPresets() []BenchPreset {
	return []BenchPreset{
		{"C1", "vgg16 224x224, train batch 4, inference batch 8", BenchConfig{Model: graphs.Config{Arch: "vgg16"}, Batch: 4, InferBatch: 8, H: 224, W: 224}, true},
		{"C2", "vgg19 224x224, batch 4", BenchConfig{Model: graphs.Config{Arch: "vgg19"}, Batch: 4, H: 224, W: 224}, true},
		{"C3", "alexnet 224x224, batch 16", BenchConfig{Model: graphs.Config{Arch: "alexnet"}, Batch: 16, H: 224, W: 224}, true},
		{"C4", "vgg16-segnet 21 classes 256x256, batch 2", BenchConfig{Model: graphs.Config{Arch: "vgg16-segnet"}, Batch: 2, H: 256, W: 256}, true},
		{"C5", "vgg19-unet 21 classes 256x256, batch 2", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet"}, Batch: 2, H: 256, W: 256}, true},
		{"C6s", "vgg16-segnet width 1/4 128x128, batch 4", BenchConfig{Model: graphs.Config{Arch: "vgg16-segnet", Mult: 0.25}, Batch: 4, H: 128, W: 128}, false},
		{"C6u", "vgg19-unet width 1/4 128x128, batch 4", BenchConfig{Model: graphs.Config{Arch: "vgg19-unet", Mult: 0.25}, Batch: 4, H: 128, W: 128}, false},
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
	return BenchPreset{}, fmt.Errorf("train: unknown benchmark config %q (valid: %s)", name, strings.Join(names, ", "))
}

// trainSession is a training graph ready to step: forward, backward, SGD.
type trainSession struct {
	m      *graphs.Model
	gr     *graphs.Graph
	grads  G.Nodes // gradient nodes, in the order of gr.Params
	plan   *ops.MemoryPlan
	vm     G.VM
	opt    Optimizer
	params []Param
	prof   *ops.Profile
	lr     float64
}

func newTrainSession(m *graphs.Model, cfg BenchConfig, prof *ops.Profile) (*trainSession, error) {
	gr, err := m.Build(cfg.Batch, cfg.H, cfg.W, graphs.Train)
	if err != nil {
		return nil, err
	}
	fillRandom(gr.InputT.Float32s(), 1)
	loss, err := losses.Build(gr.Logits, benchLabels(m, gr), losses.Spec{})
	if err != nil {
		return nil, err
	}
	grads, err := G.Grad(loss, gr.Params...)
	if err != nil {
		return nil, fmt.Errorf("train: bench: gradients: %w", err)
	}
	prof.Attach(gr.G)
	plan := ops.PlanMemory(gr.G)
	opt, err := NewOptimizer(DefaultOptimizerConfig("sgd"))
	if err != nil {
		return nil, err
	}
	s := &trainSession{m: m, gr: gr, grads: grads, opt: opt, prof: prof, lr: cfg.LR, plan: plan}
	for _, p := range m.Trainable() {
		s.params = append(s.params, Param{Name: p.Name, Data: p.Data})
	}
	// No BindDualValues: the gradient nodes' own outputs are the gradients. Binding would
	// make the machine add each into a second, parameter-sized buffer every step (which
	// then has to be cleared), doubling gradient memory and adding two passes over it.
	s.vm = G.NewTapeMachine(gr.G)
	return s, nil
}

func (s *trainSession) step(i int) error {
	s.m.SetStep(uint64(i))
	s.vm.Reset()
	if err := s.vm.RunAll(); err != nil {
		return fmt.Errorf("train: bench: step %d: %w", i, err)
	}
	for j, node := range s.grads {
		gv := node.Value()
		if gv == nil {
			return fmt.Errorf("train: bench: gradient of %s was not computed", s.params[j].Name)
		}
		s.params[j].Grad = gv.Data().([]float32)
	}
	t0 := s.prof.Start()
	if err := s.opt.Step(s.params, s.lr); err != nil {
		return err
	}
	s.prof.Stop(ops.KindOptimizer, t0)
	return nil
}

func (s *trainSession) close() { s.vm.Close() }

// inferSession is an evaluation graph ready to run.
type inferSession struct {
	gr   *graphs.Graph
	plan *ops.MemoryPlan
	vm   G.VM
}

func newInferSession(m *graphs.Model, cfg BenchConfig, prof *ops.Profile) (*inferSession, error) {
	gr, err := m.Build(cfg.InferBatch, cfg.H, cfg.W, graphs.Eval)
	if err != nil {
		return nil, err
	}
	fillRandom(gr.InputT.Float32s(), 2)
	prof.Attach(gr.G)
	plan := ops.PlanMemory(gr.G)
	return &inferSession{gr: gr, plan: plan, vm: G.NewTapeMachine(gr.G)}, nil
}

func (s *inferSession) step(i int) error {
	s.vm.Reset()
	if err := s.vm.RunAll(); err != nil {
		return fmt.Errorf("train: bench: inference step %d: %w", i, err)
	}
	return nil
}

func (s *inferSession) close() { s.vm.Close() }

func benchTrain(ctx context.Context, m *graphs.Model, cfg BenchConfig, prof *ops.Profile, res *BenchResult) ([]time.Duration, []KindTime, float64, error) {
	s, err := newTrainSession(m, cfg, prof)
	if err != nil {
		return nil, nil, 0, err
	}
	defer s.close()
	times, split, alloc, err := timeSteps(ctx, cfg, prof, s.step)
	res.TrainActivationsMiB = float64(s.plan.PoolFloats()) * 4 / (1 << 20)
	res.TrainWorkspaceMiB = float64(s.gr.Workspace.Floats()) * 4 / (1 << 20)
	return times, split, alloc, err
}

func benchInfer(ctx context.Context, m *graphs.Model, cfg BenchConfig, prof *ops.Profile, res *BenchResult) ([]time.Duration, []KindTime, float64, error) {
	s, err := newInferSession(m, cfg, prof)
	if err != nil {
		return nil, nil, 0, err
	}
	defer s.close()
	times, split, alloc, err := timeSteps(ctx, cfg, prof, s.step)
	res.InferActivationsMiB = float64(s.plan.PoolFloats()) * 4 / (1 << 20)
	res.InferWorkspaceMiB = float64(s.gr.Workspace.Floats()) * 4 / (1 << 20)
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
