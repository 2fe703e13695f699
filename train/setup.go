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
	comm := opt.Comm
	if comm == nil {
		comm = distributed.Single()
	}
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
	ov.apply(&cfg)
	t := newTrainer(cfg, opt)
	if err := t.collective(t.setup()); err != nil {
		return nil, err
	}
	if err := t.restore(f, path); err != nil {
		return nil, err
	}
	t.saved.step, t.saved.pending, t.saved.good = t.state.GlobalStep, t.state.Pending != nil, path
	if err := t.resumable(dir, ov); err != nil {
		return nil, err
	}
	return t, t.writeConfig()
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
	return report.TruncateRecords(filepath.Join(dir, report.MetricsFile), done)
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
	trainDS, valDS, err := OpenData(cfg.Data, cfg.Model.Classes)
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
	t.eval = NewEvaluator(t.model)
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
	s.sched = sched
	return sched.Validate()
}

// openLoaders makes the training loader (this rank's shard of every global batch) and
// the validation loader (this rank's share of the images).
func (t *Trainer) openLoaders(trainDS, valDS data.Dataset, info graphs.ArchInfo) error {
	cfg, s := &t.cfg, &t.step
	ranks := t.comm.Size()
	s.accum = max(cfg.Accum, 1)
	if cfg.Batch%(ranks*s.accum) != 0 {
		return fmt.Errorf("train: --batch %d does not split into %d equal micro-batches (%d ranks x --accum %d): use a multiple of %d", cfg.Batch, ranks*s.accum, ranks, s.accum, ranks*s.accum)
	}
	s.micro = cfg.Batch / (ranks * s.accum)
	aug, _ := data.ParseAugment(cfg.Data.Augment)
	var err error
	t.data.train, err = data.NewLoader(trainDS,
		data.Transform{Train: true, Augment: aug, CropH: cfg.CropH, CropW: cfg.CropW},
		data.Config{BatchSize: cfg.Batch, Workers: cfg.Data.Workers, Seed: cfg.Seed, Shuffle: true, DropLast: true,
			Shard: t.comm.Rank(), Shards: ranks})
	if err != nil {
		return err
	}
	if t.data.steps = t.data.train.StepsPerEpoch(); t.data.steps == 0 {
		return fmt.Errorf("train: the %s split has %d samples, fewer than one batch of %d", cfg.Data.TrainSplit, trainDS.Len(), cfg.Batch)
	}
	t.data.hasVal = valDS != nil
	if valDS != nil && ranks > 1 { // each rank scores every ranks-th image
		var mine []int
		for i := t.comm.Rank(); i < valDS.Len(); i += ranks {
			mine = append(mine, i)
		}
		valDS = data.Subset(valDS, mine)
	}
	if valDS == nil || valDS.Len() == 0 {
		return nil
	}
	t.data.val, err = data.NewLoader(valDS,
		data.Transform{Stride: info.Stride, CropH: cfg.CropH, CropW: cfg.CropW},
		data.Config{BatchSize: cfg.EvalBatch, Workers: cfg.Data.Workers, Seed: cfg.Seed})
	return err
}

// Expected dataset layouts, added to the error when a dataset cannot be opened.
const (
	vocLayout = `expected a PASCAL VOC layout:
	ROOT/JPEGImages/<id>.jpg
	ROOT/SegmentationClass/<id>.png   (8-bit palette PNG, pixel value = class index, 255 = ignore)
	ROOT/ImageSets/Segmentation/{train,val,trainval}.txt
with ROOT the VOC2012 folder, VOCdevkit, or the folder holding VOCdevkit`
	folderLayout = `expected an image-folder layout:
	ROOT/train/<class>/*.{jpg,jpeg,png}
	ROOT/val/<class>/*.{jpg,jpeg,png}`
)

// OpenDataset opens one split of the dataset d describes (classes: the VOC class
// count, 0 for the default). When the files are missing, the error shows the expected
// layout.
func OpenDataset(d DataConfig, split string, classes int) (ds data.Dataset, err error) {
	layout := vocLayout
	switch d.Kind {
	case "voc":
		ds, err = data.OpenVOC(d.Root, split, data.VOCOptions{MaskDir: d.MaskDir, Classes: classes})
	case "folder":
		layout = folderLayout
		ds, err = data.OpenFolder(d.Root, split)
	default:
		return nil, fmt.Errorf("train: unknown dataset kind %q (valid: voc, folder)", d.Kind)
	}
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w\n%s", err, layout)
	}
	return ds, err
}

// OpenData opens the training split (less the excluded samples) and the validation
// split (nil when there is none).
func OpenData(d DataConfig, classes int) (train, val data.Dataset, err error) {
	if train, err = OpenDataset(d, d.TrainSplit, classes); err != nil {
		return nil, nil, err
	}
	if len(d.Exclude) > 0 {
		train = data.Exclude(train, d.Exclude)
	}
	if d.ValSplit != "" {
		if val, err = OpenDataset(d, d.ValSplit, classes); err != nil {
			return nil, nil, err
		}
	}
	return train, val, nil
}
