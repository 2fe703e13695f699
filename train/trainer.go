package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/losses"
	"github.com/vggo/vggo/report"
)

// ConfigFile is the run directory's copy of the configuration.
const ConfigFile = "config.json"

// Options are the parts of a run that are not its configuration: where output goes.
type Options struct {
	Log      io.Writer // progress bars and messages (default: discard)
	Terminal bool      // draw progress bars (else plain periodic lines)
	// AfterStep, when set, is called after every optimizer step with the epoch and the
	// number of steps done in it; tests use it to interrupt a run at a chosen step.
	AfterStep func(epoch, epochStep int)
}

// ErrNonFinite is returned when the training loss becomes NaN or infinite.
var ErrNonFinite = errors.New("non-finite loss")

// Trainer trains one model on one dataset; see New and Resume.
type Trainer struct {
	cfg   Config
	opt   Options
	model *graphs.Model
	names []string

	trainLoader, valLoader *data.Loader
	steps                  int // optimizer steps per epoch

	graph   *graphs.Graph
	vm      G.VM
	loss    *G.Node
	grads   G.Nodes // gradient nodes, in the order of params
	labelsT *tensor.Dense
	params  []Param
	optim   Optimizer
	sched   Schedule
	eval    *Evaluator
	ckpt    *checkpoints.Manager

	// Progress, saved in every checkpoint.
	epoch, epochStep, globalStep int
	lossSum                      float64
	lossCount                    int
	seconds                      float64
	bestMetric                   string
	bestValue                    float64
	bestEpoch                    int
}

// Result summarises a finished run.
type Result struct {
	Epochs     int
	Steps      int
	LastEval   *EvalResult
	BestMetric string
	BestValue  float64
	BestEpoch  int
	Dir        string
}

// New prepares a fresh run in cfg.Out, which must not already hold one.
func New(cfg Config, opt Options) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, checkpoints.LastName)); err == nil {
		return nil, fmt.Errorf("train: %s already holds a run (last.safetensors); resume it with --resume %s or choose another --out", cfg.Out, cfg.Out)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("train: create run directory: %w", err)
	}
	t := &Trainer{cfg: cfg, opt: opt, bestValue: math.Inf(-1), bestEpoch: -1}
	if err := t.setup(); err != nil {
		return nil, err
	}
	if cfg.Pretrained != "" {
		rep, err := LoadPretrained(t.model, cfg.Pretrained)
		if err != nil {
			return nil, err
		}
		rep.Print(t.log(), cfg.Pretrained)
	}
	b, err := t.cfg.MarshalIndent()
	if err != nil {
		return nil, err
	}
	if err := writeConfig(cfg.Out, b); err != nil {
		return nil, err
	}
	return t, nil
}

// Overrides are what a resumed run may change: the total number of epochs (the schedule
// is stretched accordingly) and the number of loader goroutines (which does not change
// the batches). Zero keeps the saved value.
type Overrides struct {
	Epochs, Workers int
}

// Resume continues the run in dir from its last checkpoint.
func Resume(dir string, ov Overrides, opt Options) (*Trainer, error) {
	epochs := ov.Epochs
	path := filepath.Join(dir, checkpoints.LastName)
	f, err := checkpoints.Load(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("train: nothing to resume in %s: no %s", dir, checkpoints.LastName)
		}
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal([]byte(f.Metadata[MetaConfig]), &cfg); err != nil {
		return nil, fmt.Errorf("train: %s: no usable %s metadata (not a training checkpoint?): %v", path, MetaConfig, err)
	}
	cfg.Out = dir
	if epochs > 0 {
		cfg.Epochs = epochs
	}
	if ov.Workers > 0 {
		cfg.Data.Workers = ov.Workers
	}
	t := &Trainer{cfg: cfg, opt: opt}
	if err := t.setup(); err != nil {
		return nil, err
	}
	if err := t.restore(f, path); err != nil {
		return nil, err
	}
	if t.epoch >= cfg.Epochs && epochs == 0 {
		return nil, fmt.Errorf("train: the run in %s has finished its %d epochs; give --epochs N (N > %d) to train further", dir, cfg.Epochs, t.epoch)
	}
	b, err := t.cfg.MarshalIndent()
	if err != nil {
		return nil, err
	}
	if err := writeConfig(dir, b); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Trainer) log() io.Writer {
	if t.opt.Log == nil {
		return io.Discard
	}
	return t.opt.Log
}

// Model is the model being trained.
func (t *Trainer) Model() *graphs.Model { return t.model }

// Config is the run's configuration with every default filled in.
func (t *Trainer) Config() Config { return t.cfg }

// StepsPerEpoch is the number of optimizer steps in one epoch.
func (t *Trainer) StepsPerEpoch() int { return t.steps }

// setup opens the data, builds the model, the graphs, the optimizer and the schedule.
func (t *Trainer) setup() error {
	cfg := &t.cfg
	cfg.Model.Seed = cfg.Seed
	trainDS, valDS, err := openData(cfg)
	if err != nil {
		return err
	}
	t.names = trainDS.ClassNames()
	if cfg.Model.Classes == 0 {
		cfg.Model.Classes = len(t.names)
	}
	mcfg, info, err := cfg.Model.Normalize()
	if err != nil {
		return err
	}
	if info.Task == graphs.Segmentation != (trainDS.Task() == data.Segmentation) {
		return fmt.Errorf("train: %s is a %s model but %s holds %s data (--kind)", mcfg.Arch, info.Task, cfg.Data.Root, kindName(trainDS.Task()))
	}
	if info.Task == graphs.Classification {
		if mcfg.Classes != len(t.names) {
			return fmt.Errorf("train: --classes %d but %s/%s has %d class folders", mcfg.Classes, cfg.Data.Root, cfg.Data.TrainSplit, len(t.names))
		}
		mcfg.InputH, mcfg.InputW = cfg.CropH, cfg.CropW
	}
	cfg.Model = mcfg
	t.names = NamesFor(t.names, mcfg.Classes)
	if err := info.CheckInput(cfg.CropH, cfg.CropW); err != nil {
		return fmt.Errorf("train: --crop: %w", err)
	}
	if cfg.EvalBatch == 0 {
		cfg.EvalBatch = 1
		if info.Task == graphs.Classification {
			cfg.EvalBatch = cfg.Batch
		}
	}
	if t.model, err = graphs.New(mcfg); err != nil {
		return err
	}

	aug, _ := data.ParseAugment(cfg.Data.Augment)
	t.trainLoader, err = data.NewLoader(trainDS,
		data.Transform{Train: true, Augment: aug, CropH: cfg.CropH, CropW: cfg.CropW},
		data.Config{BatchSize: cfg.Batch, Workers: cfg.Data.Workers, Seed: cfg.Seed, Shuffle: true, DropLast: true})
	if err != nil {
		return err
	}
	t.steps = t.trainLoader.StepsPerEpoch()
	if t.steps == 0 {
		return fmt.Errorf("train: the %s split has %d samples, fewer than one batch of %d", cfg.Data.TrainSplit, trainDS.Len(), cfg.Batch)
	}
	if valDS != nil {
		t.valLoader, err = data.NewLoader(valDS,
			data.Transform{Stride: info.Stride, CropH: cfg.CropH, CropW: cfg.CropW},
			data.Config{BatchSize: cfg.EvalBatch, Workers: cfg.Data.Workers, Seed: cfg.Seed})
		if err != nil {
			return err
		}
	}

	sched := cfg.Schedule
	if sched.Kind == "poly" || sched.Kind == "cosine" {
		sched.TotalSteps = cfg.Epochs * t.steps
	}
	if sched.Kind == "step" && cfg.StepEveryEpochs > 0 {
		sched.StepSize = max(int(math.Round(cfg.StepEveryEpochs*float64(t.steps))), 1)
	}
	if cfg.WarmupEpochs > 0 {
		sched.WarmupSteps = int(math.Round(cfg.WarmupEpochs * float64(t.steps)))
	}
	if err := sched.Validate(); err != nil {
		return err
	}
	t.sched = sched
	if t.optim, err = NewOptimizer(cfg.Optimizer); err != nil {
		return err
	}
	if t.ckpt, err = checkpoints.NewManager(cfg.Out, cfg.Keep); err != nil {
		return err
	}
	t.eval = NewEvaluator(t.model)
	return t.buildTrainGraph()
}

func kindName(t data.Task) string {
	if t == data.Segmentation {
		return "segmentation"
	}
	return "classification"
}

// NamesFor gives a name to each of classes class indices: the dataset's names, then
// class<i> for indices beyond them.
func NamesFor(names []string, classes int) []string {
	out := make([]string, classes)
	for i := range out {
		if i < len(names) {
			out[i] = names[i]
		} else {
			out[i] = fmt.Sprintf("class%d", i)
		}
	}
	return out
}

func openData(cfg *Config) (train, val data.Dataset, err error) {
	d := cfg.Data
	open := func(split string) (data.Dataset, error) {
		if d.Kind == "folder" {
			return data.OpenFolder(d.Root, split)
		}
		return data.OpenVOC(d.Root, split, data.VOCOptions{MaskDir: d.MaskDir, Classes: cfg.Model.Classes})
	}
	if train, err = open(d.TrainSplit); err != nil {
		return nil, nil, err
	}
	if len(d.Exclude) > 0 {
		train = data.Exclude(train, d.Exclude)
	}
	if d.ValSplit != "" {
		if val, err = open(d.ValSplit); err != nil {
			return nil, nil, err
		}
	}
	return train, val, nil
}

// buildTrainGraph builds the training graph: the model in train mode, the loss and its
// gradients with respect to every trainable parameter.
func (t *Trainer) buildTrainGraph() error {
	cfg := t.cfg
	gr, err := t.model.Build(cfg.Batch, cfg.CropH, cfg.CropW, graphs.Train)
	if err != nil {
		return err
	}
	shape := []int{cfg.Batch}
	if t.model.Info.Task == graphs.Segmentation {
		shape = []int{cfg.Batch, cfg.CropH, cfg.CropW}
	}
	t.labelsT = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Int))
	labels := G.NewTensor(gr.G, tensor.Int, len(shape), G.WithShape(shape...), G.WithValue(t.labelsT), G.WithName("labels"))
	if t.loss, err = losses.Build(gr.Logits, labels, cfg.Loss); err != nil {
		return err
	}
	if t.grads, err = G.Grad(t.loss, gr.Params...); err != nil {
		return fmt.Errorf("train: gradients: %w", err)
	}
	t.graph = gr
	// Activations are pooled by the memory plan; the gradient nodes' own outputs are the
	// gradients (no BindDualValues, which would add each into a second buffer every step).
	ops.PlanMemory(gr.G)
	t.vm = G.NewTapeMachine(gr.G)
	for _, p := range t.model.Trainable() {
		t.params = append(t.params, Param{Name: p.Name, Data: p.Data, NoDecay: cfg.NoDecayBiasBN && p.NoDecay})
	}
	return nil
}

// step runs one forward and backward pass on b and one optimizer step; it returns the loss.
func (t *Trainer) step(b *data.Batch) (float64, error) {
	copy(t.graph.InputT.Data().([]float32), b.Images)
	copy(t.labelsT.Data().([]int), b.Labels)
	t.model.SetStep(uint64(t.globalStep))
	t.vm.Reset()
	if err := t.vm.RunAll(); err != nil {
		if le, ok := losses.AsLabelError(err); ok {
			return 0, fmt.Errorf("train: batch %v: %v", b.IDs, le)
		}
		return 0, fmt.Errorf("train: step %d: %w", t.globalStep, err)
	}
	terms, err := losses.LastTerms(t.loss)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(terms.Total) || math.IsInf(terms.Total, 0) {
		return terms.Total, ErrNonFinite
	}
	for i, n := range t.grads {
		gv := n.Value()
		if gv == nil {
			return 0, fmt.Errorf("train: gradient of %s was not computed", t.params[i].Name)
		}
		t.params[i].Grad = gv.Data().([]float32)
	}
	if err := t.optim.Step(t.params, t.sched.LR(t.globalStep)); err != nil {
		return 0, err
	}
	return terms.Total, nil
}

// Run trains until the configured number of epochs, evaluating every EvalEvery epochs and
// at the end. When ctx is cancelled (SIGINT, SIGTERM) it finishes the current step, saves
// the checkpoint and returns an error wrapping context.Cause(ctx).
func (t *Trainer) Run(ctx context.Context) (*Result, error) {
	cfg := t.cfg
	// The loader gets its own context so that an interrupt stops training between steps,
	// not in the middle of a batch.
	lctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer t.eval.Close()
	res := &Result{Dir: cfg.Out}
	fmt.Fprintf(t.log(), "training %s (%d classes, width 1/%d) on %s: %d steps of %d per epoch, %d epochs, %s lr %g, %s schedule\n",
		cfg.Model.Arch, cfg.Model.Classes, divisor(cfg.Model), cfg.Data.Root, t.steps, cfg.Batch, cfg.Epochs,
		t.optim.Name(), cfg.Schedule.BaseLR, scheduleName(t.sched))
	for t.epoch < cfg.Epochs {
		epoch := t.epoch
		start := time.Now()
		bar := newProgress(t.log(), t.opt.Terminal, t.steps, fmt.Sprintf("epoch %d/%d", epoch+1, cfg.Epochs))
		images := 0
		for b, err := range t.trainLoader.Epoch(lctx, epoch, t.epochStep) {
			if err != nil {
				return nil, fmt.Errorf("train: %w (run 'vggo data check --data %s' to list every bad sample, or train with --skip-bad)", err, cfg.Data.Root)
			}
			loss, err := t.step(b)
			if err != nil {
				if errors.Is(err, ErrNonFinite) {
					return nil, fmt.Errorf("train: %w: the loss became %v at epoch %d step %d (global step %d); stopped without saving, so %s is the last good checkpoint; try a lower --lr or a warm-up",
						ErrNonFinite, loss, epoch+1, t.epochStep+1, t.globalStep, t.ckpt.LastPath())
				}
				return nil, err
			}
			t.lossSum += loss
			t.lossCount++
			t.globalStep++
			t.epochStep++
			images += b.N
			elapsed := t.seconds + time.Since(start).Seconds()
			bar.update(t.epochStep, fmt.Sprintf("loss %.4f  %.1f img/s", t.lossSum/float64(t.lossCount), float64(images)/time.Since(start).Seconds()))
			if t.opt.AfterStep != nil {
				t.opt.AfterStep(epoch, t.epochStep)
			}
			interrupted := ctx.Err() != nil
			if interrupted || cfg.SaveEvery > 0 && t.globalStep%cfg.SaveEvery == 0 {
				t.seconds = elapsed
				if err := t.saveLast(); err != nil {
					return nil, err
				}
				start = time.Now()
				images = 0
			}
			if interrupted {
				bar.finish(fmt.Sprintf("interrupted at epoch %d step %d/%d; checkpoint saved to %s", epoch+1, t.epochStep, t.steps, t.ckpt.LastPath()))
				fmt.Fprintf(t.log(), "resume with: vggo train --resume %s\n", cfg.Out)
				return nil, fmt.Errorf("train: interrupted: %w", context.Cause(ctx))
			}
		}
		t.seconds += time.Since(start).Seconds()
		rec := report.EpochRecord{Epoch: epoch + 1, Step: t.globalStep, LR: t.sched.LR(max(t.globalStep-1, 0)),
			TrainLoss: t.lossSum / float64(max(t.lossCount, 1)), Seconds: t.seconds,
			ImagesPerS: float64(t.lossCount*cfg.Batch) / t.seconds}
		bar.finish(fmt.Sprintf("epoch %d/%d: loss %.4f, %.1f img/s, %.0fs", epoch+1, cfg.Epochs, rec.TrainLoss, rec.ImagesPerS, t.seconds))
		t.epoch, t.epochStep, t.lossSum, t.lossCount, t.seconds = epoch+1, 0, 0, 0, 0

		var ev *EvalResult
		if t.valLoader != nil && (cfg.EvalEvery > 0 && (epoch+1)%cfg.EvalEvery == 0 || epoch+1 == cfg.Epochs) {
			var err error
			if ev, err = t.evaluate(lctx); err != nil {
				return nil, err
			}
			res.LastEval = ev
			fillRecord(&rec, ev)
		}
		if err := report.AppendRecord(filepath.Join(cfg.Out, report.MetricsFile), rec); err != nil {
			return nil, err
		}
		if ev != nil {
			if err := t.considerBest(ev); err != nil {
				return nil, err
			}
		}
		if err := t.saveLast(); err != nil {
			return nil, err
		}
		if cfg.Keep > 0 {
			if _, err := t.ckpt.SaveNumbered(t.checkpointFile(), t.epoch, t.globalStep); err != nil {
				return nil, err
			}
		}
		if ev != nil {
			if _, err := report.WriteCharts(cfg.Out); err != nil {
				fmt.Fprintf(t.log(), "warning: charts: %v\n", err)
			}
		}
		if ctx.Err() != nil {
			fmt.Fprintf(t.log(), "interrupted after epoch %d; resume with: vggo train --resume %s\n", t.epoch, cfg.Out)
			return nil, fmt.Errorf("train: interrupted: %w", context.Cause(ctx))
		}
	}
	res.Epochs, res.Steps = t.epoch, t.globalStep
	res.BestMetric, res.BestValue, res.BestEpoch = t.bestMetric, t.bestValue, t.bestEpoch
	return res, nil
}

func divisor(c graphs.Config) int {
	k, _ := c.Divisor()
	return k
}

func scheduleName(s Schedule) string {
	if s.Kind == "" {
		return "constant"
	}
	return s.Kind
}

// evaluate scores the model on the validation split with a progress display.
func (t *Trainer) evaluate(ctx context.Context) (*EvalResult, error) {
	total := t.valLoader.Dataset().Len()
	bar := newProgress(t.log(), t.opt.Terminal, total, "  eval")
	var update func(done, total int)
	if t.opt.Terminal {
		update = func(done, total int) { bar.update(done, "") }
	}
	ev, err := Evaluate(ctx, t.eval, t.valLoader, t.names, update)
	if err != nil {
		return nil, err
	}
	name, v := ev.Metric()
	if ev.Task == graphs.Segmentation {
		bar.finish(fmt.Sprintf("  eval: mIoU %.4f, pixel acc %.4f, mean acc %.4f on %d images (%.0fs)", v, ev.Seg.PixelAcc, ev.Seg.MeanAcc, ev.Images, ev.Seconds))
	} else {
		bar.finish(fmt.Sprintf("  eval: %s %.4f, top5 %.4f on %d images (%.0fs)", name, v, ev.Cls.Top5, ev.Images, ev.Seconds))
	}
	return ev, nil
}

func fillRecord(rec *report.EpochRecord, ev *EvalResult) {
	if ev.Task == graphs.Segmentation {
		rec.MIoU = report.Optional(ev.Seg.MeanIoU)
		rec.PixelAcc = report.Optional(ev.Seg.PixelAcc)
		rec.MeanAcc = report.Optional(ev.Seg.MeanAcc)
		rec.FWIoU = report.Optional(ev.Seg.FWIoU)
		return
	}
	rec.Top1 = report.Optional(ev.Cls.Top1)
	rec.Top5 = report.Optional(ev.Cls.Top5)
}

// considerBest saves best.safetensors and best.json when ev beats the best so far.
func (t *Trainer) considerBest(ev *EvalResult) error {
	name, v := ev.Metric()
	if math.IsNaN(v) || v <= t.bestValue {
		return nil
	}
	t.bestMetric, t.bestValue, t.bestEpoch = name, v, t.epoch
	if err := t.ckpt.SaveBest(t.checkpointFile()); err != nil {
		return err
	}
	best := report.Best{Epoch: t.epoch, Step: t.globalStep, Metric: name, Value: v}
	if ev.Task == graphs.Segmentation {
		for _, c := range ev.Seg.PerClass {
			best.PerClass = append(best.PerClass, report.ClassIoU{Name: c.Name, IoU: report.Optional(c.IoU), Acc: report.Optional(c.Acc)})
		}
	}
	return report.WriteBest(filepath.Join(t.cfg.Out, report.BestFile), best)
}

// checkpointFile gathers everything a resume needs.
func (t *Trainer) checkpointFile() *checkpoints.File {
	cfgJSON, _ := json.Marshal(t.cfg)
	md := WeightsFile(t.model, t.names).Metadata
	for k, v := range map[string]string{
		MetaConfig:     string(cfgJSON),
		MetaEpoch:      strconv.Itoa(t.epoch),
		MetaEpochStep:  strconv.Itoa(t.epochStep),
		MetaGlobalStep: strconv.Itoa(t.globalStep),
		MetaSeed:       strconv.FormatUint(t.cfg.Seed, 10),
		MetaLossSum:    strconv.FormatFloat(t.lossSum, 'g', -1, 64),
		MetaLossCount:  strconv.Itoa(t.lossCount),
		MetaSeconds:    strconv.FormatFloat(t.seconds, 'g', -1, 64),
		MetaBestMetric: t.bestMetric,
		MetaBestValue:  strconv.FormatFloat(t.bestValue, 'g', -1, 64),
		MetaBestEpoch:  strconv.Itoa(t.bestEpoch),
	} {
		md[k] = v
	}
	st := t.optim.State()
	for k, v := range st.Metadata() {
		md[k] = v
	}
	f := &checkpoints.File{Tensors: modelTensors(t.model), Metadata: md}
	keys := st.Keys()
	sort.Strings(keys)
	for _, k := range keys {
		v := st.Tensors[k]
		f.Tensors = append(f.Tensors, checkpoints.Tensor{Name: k, DType: checkpoints.F32, Shape: []int{len(v)}, Data: v})
	}
	return f
}

func (t *Trainer) saveLast() error {
	return t.ckpt.SaveLast(t.checkpointFile())
}

// restore loads weights, optimizer state and progress counters from a checkpoint.
func (t *Trainer) restore(f *checkpoints.File, path string) error {
	if err := LoadWeights(t.model, f, path); err != nil {
		return err
	}
	tensors := map[string][]float32{}
	for _, tn := range f.Tensors {
		tensors[tn.Name] = tn.Data
	}
	st, err := RestoreState(f.Metadata, tensors)
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if err := t.optim.SetState(st, t.params); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	md := f.Metadata
	ints := map[string]*int{MetaEpoch: &t.epoch, MetaEpochStep: &t.epochStep, MetaGlobalStep: &t.globalStep, MetaLossCount: &t.lossCount, MetaBestEpoch: &t.bestEpoch}
	for k, p := range ints {
		v, err := strconv.Atoi(md[k])
		if err != nil {
			return fmt.Errorf("train: %s: metadata %s = %q: %v", path, k, md[k], err)
		}
		*p = v
	}
	floats := map[string]*float64{MetaLossSum: &t.lossSum, MetaSeconds: &t.seconds, MetaBestValue: &t.bestValue}
	for k, p := range floats {
		v, err := strconv.ParseFloat(md[k], 64)
		if err != nil {
			return fmt.Errorf("train: %s: metadata %s = %q: %v", path, k, md[k], err)
		}
		*p = v
	}
	t.bestMetric = md[MetaBestMetric]
	if t.epochStep > t.steps {
		return fmt.Errorf("train: %s: resumes at step %d of an epoch of %d steps: the data or --batch changed since it was saved", path, t.epochStep, t.steps)
	}
	return nil
}

// writeConfig writes RUNDIR/config.json atomically.
func writeConfig(dir string, b []byte) error {
	path := filepath.Join(dir, ConfigFile)
	if err := report.WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	return nil
}
