package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/report"
)

// ConfigFile is the run directory's copy of the configuration.
const ConfigFile = "config.json"

// New prepares a fresh run in cfg.Out, which must not already hold one.
func New(cfg Config, opt Options) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := newTrainer(cfg, opt)
	var err error
	if t.root() {
		if err = t.lockRun(cfg.Out); err == nil {
			err = newRunDir(cfg.Out)
		}
	}
	if err := t.collective(err); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.collective(t.setup()); err != nil {
		return nil, err
	}
	if cfg.Pretrained != "" && t.root() {
		var rep *PretrainedReport
		if rep, err = LoadPretrained(t.model, cfg.Pretrained); err == nil {
			rep.Print(t.Log(), cfg.Pretrained)
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
	if t.ema != nil {
		t.ema = NewEMA(t.model, cfg.EMA) // from the (pretrained, broadcast) start
	}
	return t, t.writeConfig()
}

func newTrainer(cfg Config, opt Options) *Trainer {
	t := &Trainer{cfg: cfg, opt: opt, comm: opt.Comm}
	if t.comm == nil {
		t.comm = distributed.Single()
	}
	t.saved.step = -1
	return t
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

// Overrides are what a resumed run may change; zero keeps the saved value.
type Overrides struct {
	// Epochs is the new total number of epochs (the schedule is stretched accordingly).
	Epochs int
	// Workers is the number of loader goroutines (it does not change the batches).
	Workers int
	// Accum changes the number of micro-batches per step (the global batch stays).
	Accum int
	// Data is the dataset's new location (a moved dataset).
	Data string
}

// Resume continues the run in dir from its last checkpoint.
func Resume(dir string, ov Overrides, opt Options) (*Trainer, error) {
	path := filepath.Join(dir, checkpoints.LastName)
	lt := newTrainer(Config{}, opt) // for the lock and the collectives, before the config is known
	var err error
	if lt.root() {
		if _, err = os.Stat(dir); err != nil { // (LockRun would create it)
			err = fmt.Errorf("train: nothing to resume in %s: %w", dir, err)
		} else {
			err = lt.lockRun(dir)
		}
	}
	if err := lt.collective(err); err != nil {
		return nil, err
	}
	lk := lt.lock
	f, err := loadShared(lt.comm, path)
	if err != nil {
		lt.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("train: nothing to resume in %s: no %s", dir, checkpoints.LastName)
		}
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal([]byte(f.Metadata[MetaConfig]), &cfg); err != nil {
		lt.Close()
		return nil, fmt.Errorf("train: %s: no usable %s metadata (not a training checkpoint?): %v", path, MetaConfig, err)
	}
	cfg.Out = dir
	ov.apply(&cfg)
	t := newTrainer(cfg, opt)
	t.lock = lk
	if err := t.resume(f, path, ov); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Trainer) resume(f *checkpoints.File, path string, ov Overrides) error {
	if err := t.collective(t.setup()); err != nil {
		return err
	}
	if err := t.restore(f, path); err != nil {
		return err
	}
	t.saved.step, t.saved.pending, t.saved.good = t.state.GlobalStep, t.state.Pending != nil, path
	if err := t.resumable(t.cfg.Out, ov); err != nil {
		return err
	}
	return t.writeConfig()
}

// lockRun takes the run directory's lock (rank 0): one process owns a run directory.
func (t *Trainer) lockRun(dir string) error {
	lk, err := checkpoints.LockRun(dir)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if msg := lk.TakeoverMessage(); msg != "" {
		fmt.Fprintln(t.Log(), msg)
	}
	t.lock = lk
	return nil
}

// Close releases the run directory (Run does it when it returns).
func (t *Trainer) Close() error {
	if t.eval != nil {
		t.eval.Close()
	}
	var errs []error
	for _, c := range t.closers {
		errs = append(errs, c())
	}
	t.closers = nil
	if t.lock != nil {
		errs = append(errs, t.lock.Close())
		t.lock = nil
	}
	return errors.Join(errs...)
}

func (ov Overrides) apply(cfg *Config) {
	if ov.Epochs > 0 {
		cfg.Epochs = ov.Epochs
	}
	if ov.Workers > 0 {
		cfg.Data.Workers = ov.Workers
	}
	if ov.Accum > 0 {
		cfg.Accum = ov.Accum
	}
	if ov.Data != "" {
		cfg.Data.Root = ov.Data
	}
}

// resumable refuses to resume a finished run unless given more epochs, and makes
// metrics.jsonl agree with the checkpoint (a record written after it is dropped).
func (t *Trainer) resumable(dir string, ov Overrides) error {
	s := &t.state
	if s.Epoch >= t.cfg.Epochs && s.Pending == nil && ov.Epochs == 0 {
		return fmt.Errorf("train: the run in %s has finished its %d epochs; give --epochs N (N > %d) to train further", dir, t.cfg.Epochs, s.Epoch)
	}
	if s.Stopped != "" {
		if ov.Epochs == 0 {
			return fmt.Errorf("train: the run in %s stopped (%s); give --epochs N to train further anyway", dir, s.Stopped)
		}
		s.Stopped, s.EvalsSinceBest = "", 0
	}
	if !t.root() {
		return nil
	}
	done := s.Epoch
	if s.Pending != nil {
		done-- // its record is written when the resumed run ends that epoch
	}
	dropped, err := report.TruncateRecords(filepath.Join(dir, report.MetricsFile), done)
	if dropped > 0 {
		fmt.Fprintf(t.Log(), "metrics.jsonl: dropped %d record(s) written after the checkpoint\n", dropped)
	}
	if err != nil {
		return err
	}
	return truncateSteps(filepath.Join(dir, StepsFile), s.GlobalStep)
}

func (t *Trainer) writeConfig() error {
	if !t.root() {
		return nil
	}
	b, err := t.cfg.MarshalIndent()
	if err != nil {
		return err
	}
	path := filepath.Join(t.cfg.Out, ConfigFile)
	if err := report.WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	return nil
}

// setup opens the data, builds the model, the session, the optimizer, the schedule and
// the hooks.
func (t *Trainer) setup() error {
	cfg := &t.cfg
	cfg.Model.Seed = cfg.Seed
	if cfg.Model.Classes == 0 && len(cfg.ClassNames) > 0 {
		cfg.Model.Classes = len(cfg.ClassNames)
	}
	trainDS, valDS, err := OpenData(cfg.Data, cfg.Model.Classes, t.Log())
	if err != nil {
		return err
	}
	info, err := t.buildModel(trainDS)
	if err != nil {
		return err
	}
	if err := t.openLoaders(trainDS, valDS, info); err != nil {
		return err
	}
	if err := t.buildStep(); err != nil {
		return err
	}
	if t.root() {
		if t.ckpt, err = checkpoints.NewManager(cfg.Out, cfg.Keep); err != nil {
			return err
		}
	}
	t.eval = NewEvaluator(t.model).WithLoss(cfg.Loss)
	if cfg.EMA > 0 {
		t.ema = NewEMA(t.model, cfg.EMA)
	}
	t.addHooks()
	return nil
}

// buildModel completes the model configuration from the data and builds the model.
func (t *Trainer) buildModel(trainDS data.Dataset) (graphs.ArchInfo, error) {
	cfg := &t.cfg
	names := trainDS.ClassNames()
	if cfg.Model.Classes == 0 {
		cfg.Model.Classes = len(names)
	}
	mcfg, info, err := cfg.Model.Normalize()
	if err != nil {
		return info, err
	}
	if info.Task != trainDS.Task() {
		return info, fmt.Errorf("train: %s is a %s model but %s holds %s data (--kind)", mcfg.Arch, info.Task, cfg.Data.Root, trainDS.Task())
	}
	if info.Task == label.Classification {
		if mcfg.Classes != len(names) {
			return info, fmt.Errorf("train: --classes %d but %s/%s has %d class folders", mcfg.Classes, cfg.Data.Root, cfg.Data.TrainSplit, len(names))
		}
		mcfg.InputH, mcfg.InputW = cfg.CropH, cfg.CropW
	}
	cfg.Model = mcfg
	if len(cfg.ClassNames) > 0 {
		names = cfg.ClassNames
	}
	t.names = label.Names(mcfg.Classes, names)
	if err := info.CheckInput(cfg.CropH, cfg.CropW); err != nil {
		return info, fmt.Errorf("train: --crop: %w", err)
	}
	if cfg.EvalBatch == 0 {
		cfg.EvalBatch = 1
		if info.Task == label.Classification {
			cfg.EvalBatch = cfg.Batch
		}
	}
	t.model, err = graphs.New(mcfg)
	if err == nil && cfg.SyncBN && t.comm.Size() > 1 {
		t.model.SetBatchNormSync(t.comm)
	}
	return info, err
}

// buildStep builds the training session, the optimizer and the schedule.
func (t *Trainer) buildStep() error {
	cfg, s := &t.cfg, &t.step
	var err error
	if s.sess, err = NewTrainSession(t.model, s.micro, cfg.CropH, cfg.CropW, SessionOptions{Loss: cfg.Loss}); err != nil {
		return err
	}
	s.params = Params(t.model, cfg.NoDecayBiasBN)
	if s.accum*t.comm.Size() > 1 {
		s.bucket = newGradBucket(t.model, s.params)
	}
	if s.optim, err = NewOptimizer(cfg.Optimizer); err != nil {
		return err
	}
	steps := t.data.steps
	sched := cfg.Schedule
	if sched.Kind == "poly" || sched.Kind == "cosine" {
		sched.TotalSteps = cfg.Epochs * steps
	}
	if sched.Kind == "step" {
		if cfg.StepEveryEpochs == 0 { // a third of the run, fixed now so that --epochs on resume keeps it
			cfg.StepEveryEpochs = max(float64(cfg.Epochs)/3, 1)
		}
		sched.StepSize = max(int(math.Round(cfg.StepEveryEpochs*float64(steps))), 1)
	}
	if cfg.WarmupEpochs > 0 {
		sched.WarmupSteps = int(math.Round(cfg.WarmupEpochs * float64(steps)))
	}
	s.sched = sched.Resolved()
	cfg.Schedule = s.sched // config.json shows the schedule the run follows
	return s.sched.Validate()
}
