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
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/label"
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
	// Comm connects the ranks of a data-parallel run (see parallel.go); nil is a world
	// of one. Only rank 0 writes the run directory and logs.
	Comm distributed.Comm
}

// ErrNonFinite is returned when the training loss becomes NaN or infinite.
var ErrNonFinite = errors.New("non-finite loss")

// ErrInterrupted is wrapped by Run's error when it stopped on a cancelled context (on
// any rank), after saving the checkpoint.
var ErrInterrupted = errors.New("interrupted")

func (t *Trainer) interrupted(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("train: %w: %w", ErrInterrupted, cause)
	}
	return fmt.Errorf("train: %w on another rank", ErrInterrupted)
}

// resumeCommand is the command line that continues this run.
func (t *Trainer) resumeCommand() string {
	if n := t.comm.Size(); n > 1 {
		return fmt.Sprintf("mpirun -np %d vggo train --distributed --resume %s", n, t.cfg.Out)
	}
	return "vggo train --resume " + t.cfg.Out
}

// Trainer trains one model on one dataset; see New and Resume.
type Trainer struct {
	cfg   Config
	opt   Options
	comm  distributed.Comm
	model *graphs.Model
	names []string
	micro int // samples per forward pass: Batch / (ranks × Accum)

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
	ckpt    *checkpoints.Manager // rank 0 only
	bucket  *gradBucket          // when a step has several micro-batches (ranks × Accum > 1)
	hasVal  bool                 // a validation split is configured (valLoader may be nil on some ranks)

	allreduceSeconds float64

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
	t := &Trainer{cfg: cfg, opt: opt, comm: opt.world(), bestValue: math.Inf(-1), bestEpoch: -1}
	var err error
	if t.root() {
		err = newRunDir(cfg.Out)
	}
	if err := t.collective(err); err != nil {
		return nil, err
	}
	if err := t.collective(t.setup()); err != nil {
		return nil, err
	}
	if cfg.Pretrained != "" && t.root() {
		var rep *PretrainedReport
		if rep, err = LoadPretrained(t.model, cfg.Pretrained); err == nil {
			rep.Print(t.log(), cfg.Pretrained)
		}
	}
	if err := t.collective(err); err != nil {
		return nil, err
	}
	// Every rank starts from rank 0's weights (seeded initialisation gives the same ones
	// anyway; a pretrained file need only be on rank 0's machine).
	if err := t.broadcastModel(); err != nil {
		return nil, err
	}
	if t.root() {
		b, err := t.cfg.MarshalIndent()
		if err != nil {
			return nil, err
		}
		if err := writeConfig(cfg.Out, b); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// newRunDir creates dir for a fresh run, refusing one that already holds a run.
func newRunDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, checkpoints.LastName)); err == nil {
		return fmt.Errorf("train: %s already holds a run (last.safetensors); resume it with --resume %s or choose another --out", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: create run directory: %w", err)
	}
	return nil
}

func (o Options) world() distributed.Comm {
	if o.Comm == nil {
		return distributed.Single()
	}
	return o.Comm
}

// collective returns err on the rank that had it and an error on every other rank when
// any rank had one, so that a failure on one rank does not leave the others waiting in
// a collective call.
func (t *Trainer) collective(err error) error {
	failed, aerr := t.anyRank(err != nil)
	switch {
	case err != nil:
		return err
	case aerr != nil:
		return aerr
	case failed:
		return fmt.Errorf("train: another rank failed (rank 0's output has its error)")
	}
	return nil
}

// Overrides are what a resumed run may change: the total number of epochs (the schedule
// is stretched accordingly) and the number of loader goroutines (which does not change
// the batches). Zero keeps the saved value.
type Overrides struct {
	Epochs, Workers int
	// Accum changes the number of micro-batches per step (the global batch stays).
	Accum int
}

// Resume continues the run in dir from its last checkpoint.
func Resume(dir string, ov Overrides, opt Options) (*Trainer, error) {
	epochs := ov.Epochs
	path := filepath.Join(dir, checkpoints.LastName)
	comm := opt.world()
	f, err := loadShared(comm, path)
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
	if ov.Accum > 0 {
		cfg.Accum = ov.Accum
	}
	t := &Trainer{cfg: cfg, opt: opt, comm: comm}
	if err := t.collective(t.setup()); err != nil {
		return nil, err
	}
	if err := t.restore(f, path); err != nil {
		return nil, err
	}
	if t.epoch >= cfg.Epochs && epochs == 0 {
		return nil, fmt.Errorf("train: the run in %s has finished its %d epochs; give --epochs N (N > %d) to train further", dir, cfg.Epochs, t.epoch)
	}
	if t.root() {
		b, err := t.cfg.MarshalIndent()
		if err != nil {
			return nil, err
		}
		if err := writeConfig(dir, b); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Trainer) log() io.Writer {
	if t.opt.Log == nil || !t.root() {
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
	if info.Task != trainDS.Task() {
		return fmt.Errorf("train: %s is a %s model but %s holds %s data (--kind)", mcfg.Arch, info.Task, cfg.Data.Root, trainDS.Task())
	}
	if info.Task == label.Classification {
		if mcfg.Classes != len(t.names) {
			return fmt.Errorf("train: --classes %d but %s/%s has %d class folders", mcfg.Classes, cfg.Data.Root, cfg.Data.TrainSplit, len(t.names))
		}
		mcfg.InputH, mcfg.InputW = cfg.CropH, cfg.CropW
	}
	cfg.Model = mcfg
	t.names = label.Names(mcfg.Classes, t.names)
	if err := info.CheckInput(cfg.CropH, cfg.CropW); err != nil {
		return fmt.Errorf("train: --crop: %w", err)
	}
	if cfg.EvalBatch == 0 {
		cfg.EvalBatch = 1
		if info.Task == label.Classification {
			cfg.EvalBatch = cfg.Batch
		}
	}
	if t.model, err = graphs.New(mcfg); err != nil {
		return err
	}

	ranks, accum := t.comm.Size(), max(cfg.Accum, 1)
	if cfg.Batch%(ranks*accum) != 0 {
		return fmt.Errorf("train: --batch %d does not split into %d equal micro-batches (%d ranks x --accum %d): use a multiple of %d", cfg.Batch, ranks*accum, ranks, accum, ranks*accum)
	}
	t.micro = cfg.Batch / (ranks * accum)
	aug, _ := data.ParseAugment(cfg.Data.Augment)
	t.trainLoader, err = data.NewLoader(trainDS,
		data.Transform{Train: true, Augment: aug, CropH: cfg.CropH, CropW: cfg.CropW},
		data.Config{BatchSize: cfg.Batch, Workers: cfg.Data.Workers, Seed: cfg.Seed, Shuffle: true, DropLast: true,
			Shard: t.comm.Rank(), Shards: ranks})
	if err != nil {
		return err
	}
	t.steps = t.trainLoader.StepsPerEpoch()
	if t.steps == 0 {
		return fmt.Errorf("train: the %s split has %d samples, fewer than one batch of %d", cfg.Data.TrainSplit, trainDS.Len(), cfg.Batch)
	}
	t.hasVal = valDS != nil
	if valDS != nil && ranks > 1 { // each rank scores every ranks-th image
		var mine []int
		for i := t.comm.Rank(); i < valDS.Len(); i += ranks {
			mine = append(mine, i)
		}
		valDS = data.Subset(valDS, mine)
	}
	if valDS != nil && valDS.Len() > 0 {
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
	if t.root() {
		if t.ckpt, err = checkpoints.NewManager(cfg.Out, cfg.Keep); err != nil {
			return err
		}
	}
	if cfg.SyncBN && ranks > 1 {
		t.model.SetBatchNormSync(t.comm)
	}
	t.eval = NewEvaluator(t.model)
	if err := t.buildTrainGraph(); err != nil {
		return err
	}
	if ranks*accum > 1 {
		t.bucket = newGradBucket(t.model, t.params)
	}
	return nil
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
	gr, err := t.model.Build(t.micro, cfg.CropH, cfg.CropW, graphs.Train)
	if err != nil {
		return err
	}
	shape := []int{t.micro}
	if t.model.Info.Task == label.Segmentation {
		shape = []int{t.micro, cfg.CropH, cfg.CropW}
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

// step runs one optimizer step on b (this rank's share of the global batch): a forward
// and backward pass per micro-batch, the gradients summed over micro-batches and ranks,
// one optimizer step. It returns the loss: the mean of the micro-batches' mean losses
// over every rank.
func (t *Trainer) step(b *data.Batch) (float64, error) {
	in, lab := t.graph.InputT.Data().([]float32), t.labelsT.Data().([]int)
	accum := max(t.cfg.Accum, 1)
	parts := accum * t.comm.Size()
	if b.N != t.micro*accum || len(b.Images) != len(in)*accum || len(b.Labels) != len(lab)*accum {
		return 0, fmt.Errorf("train: step %d: batch of %d samples, want %d", t.globalStep, b.N, t.micro*accum)
	}
	if t.bucket != nil {
		t.bucket.saveStats()
	}
	var loss float64
	first := uint64(t.comm.Rank() * (t.cfg.Batch / t.comm.Size())) // this rank's first sample
	for k := range accum {
		copy(in, b.Images[k*len(in):])
		copy(lab, b.Labels[k*len(lab):])
		t.model.SetStep(uint64(t.globalStep))
		t.model.SetSample(first + uint64(k*t.micro))
		t.vm.Reset()
		if err := t.vm.RunAll(); err != nil {
			ids := b.IDs[k*t.micro : (k+1)*t.micro]
			if le, ok := losses.AsLabelError(err); ok {
				return 0, fmt.Errorf("train: batch %v: %v", ids, le)
			}
			return 0, fmt.Errorf("train: step %d: %w", t.globalStep, err)
		}
		terms, err := losses.LastTerms(t.loss)
		if err != nil {
			return 0, err
		}
		loss += terms.Total
		for i, n := range t.grads {
			gv := n.Value()
			if gv == nil {
				return 0, fmt.Errorf("train: gradient of %s was not computed", t.params[i].Name)
			}
			t.params[i].Grad = gv.Data().([]float32)
		}
		if t.bucket != nil {
			t.bucket.addGrads(k, t.params)
			t.bucket.addStats(k)
		}
	}
	if t.comm.Size() > 1 {
		l := []float64{loss}
		if err := t.comm.AllreduceF64(l); err != nil {
			return 0, fmt.Errorf("train: step %d: sum the loss over ranks: %w", t.globalStep, err)
		}
		loss = l[0]
	}
	if parts > 1 {
		loss /= float64(parts)
	}
	if !finite(loss) { // (with a bucket, the running statistics are still the step's start)
		return loss, ErrNonFinite
	}
	if t.bucket != nil {
		// One allreduce of every gradient and running statistic (a fusion buffer, as
		// Horovod's), then the mean over micro-batches and ranks.
		if t.comm.Size() > 1 {
			start := time.Now()
			if err := t.comm.AllreduceF32(t.bucket.buf); err != nil {
				return 0, fmt.Errorf("train: step %d: allreduce gradients: %w", t.globalStep, err)
			}
			t.allreduceSeconds += time.Since(start).Seconds()
		}
		t.bucket.finish(parts)
		for i := range t.params {
			t.params[i].Grad = t.bucket.grads[i]
		}
	}
	if err := t.optim.Step(t.params, t.sched.LR(t.globalStep)); err != nil {
		return 0, err
	}
	return loss, nil
}

// AllreduceSeconds is the time this rank has spent in the gradient allreduce.
func (t *Trainer) AllreduceSeconds() float64 { return t.allreduceSeconds }

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
	if parts := t.comm.Size() * max(cfg.Accum, 1); parts > 1 {
		sync := ""
		if cfg.SyncBN && t.comm.Size() > 1 {
			sync = ", batch norm synchronised across ranks"
		}
		fmt.Fprintf(t.log(), "each step: %d rank(s) x %d micro-batch(es) of %d samples, gradients averaged%s\n",
			t.comm.Size(), max(cfg.Accum, 1), t.micro, sync)
	}
	for t.epoch < cfg.Epochs {
		epoch := t.epoch
		start := time.Now()
		reduceStart, stepStart := t.allreduceSeconds, t.epochStep
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
						ErrNonFinite, loss, epoch+1, t.epochStep+1, t.globalStep, t.lastPath())
				}
				return nil, err
			}
			t.lossSum += loss
			t.lossCount++
			t.globalStep++
			t.epochStep++
			images += cfg.Batch
			elapsed := t.seconds + time.Since(start).Seconds()
			bar.update(t.epochStep, fmt.Sprintf("loss %.4f  %.1f img/s", t.lossSum/float64(t.lossCount), float64(images)/time.Since(start).Seconds()))
			if t.opt.AfterStep != nil {
				t.opt.AfterStep(epoch, t.epochStep)
			}
			interrupted, err := t.anyRank(ctx.Err() != nil)
			if err != nil {
				return nil, err
			}
			if interrupted || cfg.SaveEvery > 0 && t.globalStep%cfg.SaveEvery == 0 {
				t.seconds = elapsed
				if err := t.saveLast(); err != nil {
					return nil, err
				}
				start = time.Now()
				images = 0
			}
			if interrupted {
				bar.finish(fmt.Sprintf("interrupted at epoch %d step %d/%d; checkpoint saved to %s", epoch+1, t.epochStep, t.steps, t.lastPath()))
				fmt.Fprintf(t.log(), "resume with: %s\n", t.resumeCommand())
				return nil, t.interrupted(ctx)
			}
		}
		t.seconds += time.Since(start).Seconds()
		rec := report.EpochRecord{Epoch: epoch + 1, Step: t.globalStep, LR: t.sched.LR(max(t.globalStep-1, 0)),
			TrainLoss: t.lossSum / float64(max(t.lossCount, 1)), Seconds: t.seconds,
			ImagesPerS: float64(t.lossCount*cfg.Batch) / t.seconds}
		line := fmt.Sprintf("epoch %d/%d: loss %.4f, %.1f img/s, %.0fs", epoch+1, cfg.Epochs, rec.TrainLoss, rec.ImagesPerS, t.seconds)
		if n := t.epochStep - stepStart; t.comm.Size() > 1 && n > 0 {
			rec.AllreduceMS = 1000 * (t.allreduceSeconds - reduceStart) / float64(n)
			line += fmt.Sprintf(", allreduce %.1f ms/step", rec.AllreduceMS)
		}
		bar.finish(line)
		t.epoch, t.epochStep, t.lossSum, t.lossCount, t.seconds = epoch+1, 0, 0, 0, 0

		var ev *EvalResult
		if t.hasVal && (cfg.EvalEvery > 0 && (epoch+1)%cfg.EvalEvery == 0 || epoch+1 == cfg.Epochs) {
			var err error
			if ev, err = t.evaluate(lctx); err != nil {
				return nil, err
			}
			res.LastEval = ev
			fillRecord(&rec, ev)
		}
		if t.root() {
			if err := report.AppendRecord(filepath.Join(cfg.Out, report.MetricsFile), rec); err != nil {
				return nil, err
			}
		}
		if ev != nil {
			if err := t.considerBest(ev); err != nil {
				return nil, err
			}
		}
		if err := t.saveLast(); err != nil {
			return nil, err
		}
		if cfg.Keep > 0 && t.root() {
			if _, err := t.ckpt.SaveNumbered(t.checkpointFile(), t.epoch, t.globalStep); err != nil {
				return nil, err
			}
		}
		if ev != nil && t.root() {
			if _, err := report.WriteCharts(cfg.Out); err != nil {
				fmt.Fprintf(t.log(), "warning: charts: %v\n", err)
			}
		}
		if stop, err := t.anyRank(ctx.Err() != nil); err != nil {
			return nil, err
		} else if stop {
			fmt.Fprintf(t.log(), "interrupted after epoch %d; resume with: %s\n", t.epoch, t.resumeCommand())
			return nil, t.interrupted(ctx)
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

// evaluate scores the model on the validation split with a progress display; in a
// data-parallel run each rank scores its share and the counts are merged.
func (t *Trainer) evaluate(ctx context.Context) (*EvalResult, error) {
	ev := emptyEval(t.model.Info.Task, len(t.names))
	var bar progress
	if t.valLoader != nil { // a rank's share may be empty when ranks outnumber images
		bar = newProgress(t.log(), t.opt.Terminal, t.valLoader.Dataset().Len(), "  eval")
		var update func(done, total int)
		if t.opt.Terminal {
			update = func(done, total int) { bar.update(done, "") }
		}
		var err error
		if ev, err = Evaluate(ctx, t.eval, t.valLoader, t.names, update); err != nil {
			return nil, err
		}
	}
	if err := reduceEval(t.comm, ev, t.names); err != nil {
		return nil, err
	}
	if t.valLoader == nil {
		return ev, nil
	}
	name, v := ev.Metric()
	if ev.Task == label.Segmentation {
		bar.finish(fmt.Sprintf("  eval: mIoU %.4f, pixel acc %.4f, mean acc %.4f on %d images (%.0fs)", v, ev.Seg.PixelAcc, ev.Seg.MeanAcc, ev.Images, ev.Seconds))
	} else {
		bar.finish(fmt.Sprintf("  eval: %s %.4f, top5 %.4f on %d images (%.0fs)", name, v, ev.Cls.Top5, ev.Images, ev.Seconds))
	}
	return ev, nil
}

func fillRecord(rec *report.EpochRecord, ev *EvalResult) {
	if ev.Task == label.Segmentation {
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
	if !t.root() {
		return nil
	}
	if err := t.ckpt.SaveBest(t.checkpointFile()); err != nil {
		return err
	}
	best := report.Best{Epoch: t.epoch, Step: t.globalStep, Metric: name, Value: v}
	if ev.Task == label.Segmentation {
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
	if !t.root() {
		return nil
	}
	return t.ckpt.SaveLast(t.checkpointFile())
}

func (t *Trainer) lastPath() string { return filepath.Join(t.cfg.Out, checkpoints.LastName) }

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
