// Package infer loads a trained vggo model and runs it on images: Segment returns a
// class mask at the image's own size, Classify the most probable classes, Probabilities
// the per-class probabilities behind either.
//
// A large image is cut into overlapping tiles (sliding-window inference, as
// mmsegmentation's "slide" mode): the logits of each tile are added into the pixels it
// covers and divided by the number of tiles covering each pixel, so the memory a call
// needs is bounded by the tile, not by the photo. Test-time augmentation runs the image
// at several scales, mirrored and not, and averages the softmax probabilities.
//
// A Model is safe for concurrent use: each forward pass takes one of its compiled graphs
// (Options.Concurrency of them, each keeping a few input shapes) and gives it back. The
// convolutions of one pass spread over GOMAXPROCS threads; Concurrency says how many
// passes run at once. Use one Model for a whole program and close it at the end.
//
// infer imports train (for its sessions and checkpoint loading); nothing in vggo but the
// command line imports infer.
package infer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"slices"
	"sync"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/train"
)

// Mode says how an image goes through a segmentation model.
type Mode int

const (
	// Auto runs the whole image at once when it is no larger (in padded pixels) than
	// one tile, and slides the tile over it otherwise. The default.
	Auto Mode = iota
	// Whole runs the whole image at once, whatever its size: memory grows with it.
	Whole
	// Slide always slides the tile over the image, even a small one.
	Slide
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Whole:
		return "whole"
	case Slide:
		return "slide"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "auto", "whole" or "slide".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Auto, Whole, Slide} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("infer: mode %q: want auto, whole or slide", s)
}

// DefaultScales are the test-time augmentation scales (of the image's size).
var defaultScales = []float64{0.5, 0.75, 1.0, 1.25, 1.5, 1.75}

// DefaultScales returns the test-time augmentation scales used when Options.Scales is
// empty: 0.5, 0.75, 1.0, 1.25, 1.5 and 1.75, as mmsegmentation's aug-test.
func DefaultScales() []float64 { return slices.Clone(defaultScales) }

// Default tile: 512x512 keeps a full-width vgg19-unet's forward pass near 1 GiB; the
// stride of 341 (two thirds of it) is mmsegmentation's for 512 crops.
const (
	DefaultTile   = 512
	DefaultStride = 341
)

// Options say how a Model runs. The zero value means the defaults.
type Options struct {
	// Mode: Auto (default), Whole or Slide. Classifiers ignore it (they always resize
	// and centre-crop to their input size).
	Mode Mode
	// TileH, TileW: the sliding window, in pixels; multiples of the model's stride
	// (16 for vgg19-unet, 32 for vgg16-segnet). Default 512x512.
	TileH, TileW int
	// StrideH, StrideW: the step between windows, at most the tile. Default 341x341,
	// or the tile when the tile is set and the stride is not, times 2/3.
	StrideH, StrideW int
	// TTA turns test-time augmentation on: every scale of Scales, each plain and
	// mirrored left-right (unless NoFlip), softmax probabilities averaged. Classifiers
	// average the image and its mirror image. Segmentation with TTA keeps one
	// classes×H×W float32 buffer of the image's size (1 GiB for a 12-megapixel photo
	// with 21 classes).
	TTA    bool
	Scales []float64 // TTA scales; default DefaultScales()
	NoFlip bool      // TTA without the mirrored passes

	// Batch is the most images SegmentBatch and ClassifyBatch put in one forward pass
	// (default 1). Segmentation batches only images of the same padded size, run whole.
	// A call runs full batches, then the images left one by one, so that each input size
	// needs at most two compiled graphs.
	Batch int
	// Concurrency is how many forward passes may run at once, each on its own compiled
	// graphs (default 1). It is fixed when the model is opened; With keeps it.
	Concurrency int
	// Graphs is how many input shapes each of the Concurrency slots keeps compiled
	// (default 2); a graph holds its activation memory between calls. Fixed at open.
	Graphs int
	// Progress, when set, is called after every forward pass of a call with the passes
	// done and the passes the call makes in all (tiles times augmentations).
	Progress func(done, total int)
}

func (o Options) withDefaults() Options {
	if o.TileH == 0 && o.TileW == 0 {
		o.TileH, o.TileW = DefaultTile, DefaultTile
		if o.StrideH == 0 && o.StrideW == 0 {
			o.StrideH, o.StrideW = DefaultStride, DefaultStride
		}
	}
	if o.TileW == 0 {
		o.TileW = o.TileH
	}
	if o.TileH == 0 {
		o.TileH = o.TileW
	}
	if o.StrideH == 0 && o.StrideW == 0 {
		o.StrideH, o.StrideW = max(1, o.TileH*2/3), max(1, o.TileW*2/3)
	}
	if o.StrideW == 0 {
		o.StrideW = o.StrideH
	}
	if o.StrideH == 0 {
		o.StrideH = o.StrideW
	}
	if len(o.Scales) == 0 {
		o.Scales = DefaultScales()
	}
	if o.Batch == 0 {
		o.Batch = 1
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.Graphs == 0 {
		o.Graphs = 2
	}
	return o
}

func (o Options) check(info graphs.ArchInfo) error {
	s := info.Stride
	switch {
	case o.Mode < Auto || o.Mode > Slide:
		return fmt.Errorf("infer: unknown mode %v (want auto, whole or slide)", o.Mode)
	case o.TileH < 1 || o.TileW < 1:
		return fmt.Errorf("infer: tile %dx%d: want positive sizes", o.TileH, o.TileW)
	case info.Task == label.Segmentation && (o.TileH%s != 0 || o.TileW%s != 0):
		return fmt.Errorf("infer: tile %dx%d: %s needs multiples of %d (try %dx%d)", o.TileH, o.TileW, info.Name, s,
			max(s, o.TileH/s*s), max(s, o.TileW/s*s))
	case o.StrideH < 1 || o.StrideW < 1 || o.StrideH > o.TileH || o.StrideW > o.TileW:
		return fmt.Errorf("infer: stride %dx%d: want 1 <= stride <= tile (%dx%d)", o.StrideH, o.StrideW, o.TileH, o.TileW)
	case o.Batch < 1 || o.Concurrency < 1 || o.Graphs < 1:
		return fmt.Errorf("infer: batch %d, concurrency %d, graphs %d: want >= 1", o.Batch, o.Concurrency, o.Graphs)
	}
	for _, sc := range o.Scales {
		if !(sc >= 0.1 && sc <= 4) {
			return fmt.Errorf("infer: TTA scale %g: want 0.1 <= scale <= 4", sc)
		}
	}
	return nil
}

// Info describes an opened model.
type Info struct {
	Config graphs.Config // the architecture, as built (defaults filled in)
	Task   label.Task
	Stride int // segmentation inputs are padded to a multiple of it
	Params int // parameters and buffers, counted as Keras does
	// From the file: the path, and for a training checkpoint its completed epochs and
	// best validation score (Epoch 0 and an empty Metric when the file has none).
	Path   string
	Epoch  int
	Metric string
	Score  float64
}

// Model is a loaded network ready for inference. It is safe for concurrent use.
type Model struct {
	*core
	opt Options
}

// core is what the views made by With share: the weights and the compiled graphs.
type core struct {
	net     *graphs.Model
	names   []string
	palette color.Palette // of the masks: 256 colours
	info    Info
	conc    int
	slots   chan *slot
	once    sync.Once
}

// Open loads a vggo file: a training checkpoint (last.safetensors, best.safetensors) or
// a weights file written by vggo export or train.WeightsFile, which describe their own
// architecture and class names.
func Open(path string, opt Options) (*Model, error) {
	net, f, err := train.OpenModel(path)
	if err != nil {
		return nil, err
	}
	return newModel(net, f, path, opt)
}

// OpenAs loads a weights file that does not describe its architecture (weights
// converted from PyTorch): cfg says which model its tensors are for.
func OpenAs(path string, cfg graphs.Config, opt Options) (*Model, error) {
	net, f, err := train.OpenModelAs(path, cfg)
	if err != nil {
		return nil, err
	}
	return newModel(net, f, path, opt)
}

// New wraps a model already in memory, with its class names (nil: the defaults of
// train.ClassNames). The Model reads net's parameters at every pass: do not train net
// while it is in use.
func New(net *graphs.Model, names []string, opt Options) (*Model, error) {
	f := train.WeightsFile(net, names)
	if names == nil {
		f = nil
	}
	return newModel(net, f, "", opt)
}

func palette(f *checkpoints.File) ([]color.RGBA, error) {
	if f == nil {
		return nil, nil
	}
	return train.Palette(f)
}

func newModel(net *graphs.Model, f *checkpoints.File, path string, opt Options) (*Model, error) {
	opt = opt.withDefaults()
	if err := opt.check(net.Info); err != nil {
		return nil, err
	}
	total, _, _ := net.Counts()
	c := &core{
		net:   net,
		names: train.ClassNames(f, net.Config.Classes),
		info:  Info{Config: net.Config, Task: net.Info.Task, Stride: net.Info.Stride, Params: total, Path: path},
		conc:  opt.Concurrency,
		slots: make(chan *slot, opt.Concurrency),
	}
	cols, err := palette(f)
	if err != nil {
		return nil, err
	}
	c.palette = data.MaskPalette(cols)
	if f != nil {
		var p train.Progress
		if js, ok := f.Metadata[train.MetaProgress]; ok && json.Unmarshal([]byte(js), &p) == nil {
			c.info.Epoch, c.info.Metric, c.info.Score = p.Epoch, p.Best.Metric, p.Best.Value
		}
	}
	for range opt.Concurrency {
		c.slots <- &slot{net: net, max: opt.Graphs, cache: map[[3]int]*train.Session{}}
	}
	return &Model{core: c, opt: opt}, nil
}

// With returns a view of the model with other options (mode, tiles, TTA, batch,
// progress) that shares its weights and compiled graphs. Concurrency and Graphs are
// fixed at open: they must be zero or the model's.
func (m *Model) With(opt Options) (*Model, error) {
	if opt.Concurrency != 0 && opt.Concurrency != m.conc || opt.Graphs != 0 && opt.Graphs != m.opt.Graphs {
		return nil, fmt.Errorf("infer: With: concurrency %d and graphs %d are fixed when the model is opened (%d, %d)",
			opt.Concurrency, opt.Graphs, m.conc, m.opt.Graphs)
	}
	opt.Concurrency, opt.Graphs = m.conc, m.opt.Graphs
	opt = opt.withDefaults()
	if err := opt.check(m.net.Info); err != nil {
		return nil, err
	}
	return &Model{core: m.core, opt: opt}, nil
}

// Options returns the model's options, defaults filled in.
func (m *Model) Options() Options { return m.opt }

// Info describes the model and the file it came from.
func (m *Model) Info() Info { return m.info }

// Task is label.Segmentation or label.Classification.
func (m *Model) Task() label.Task { return m.info.Task }

// ClassNames returns the name of every class, by index (a new slice).
func (m *Model) ClassNames() []string { return slices.Clone(m.names) }

// Close releases the compiled graphs, waiting for passes in flight. The model must not
// be used afterwards (by any view made by With).
func (m *Model) Close() {
	m.once.Do(func() {
		for range m.conc {
			s := <-m.slots
			s.close()
		}
	})
}

// ErrTask is returned when a call does not fit the model's task (Segment on a
// classifier, Classify on a segmentation model).
var ErrTask = errors.New("infer: wrong task for this model")

func (m *Model) need(task label.Task, call string) error {
	if m.info.Task != task {
		return fmt.Errorf("%w: %s needs a %s model; %s is a %s model", ErrTask, call, task, m.info.Config.Arch, m.info.Task)
	}
	return nil
}

// slot is one set of compiled graphs: a session per input shape, the most recent few.
// One goroutine uses a slot at a time (a tape machine is not safe for concurrent use).
type slot struct {
	net   *graphs.Model
	max   int
	cache map[[3]int]*train.Session
	order [][3]int
}

// forward runs n images of h×w (NCHW floats) and returns the logits, valid until the
// slot's next run.
func (s *slot) forward(in []float32, n, h, w int) ([]float32, error) {
	key := [3]int{n, h, w}
	ss, ok := s.cache[key]
	if !ok {
		if len(s.order) == s.max { // free the oldest graph before building the next
			s.cache[s.order[0]].Close()
			delete(s.cache, s.order[0])
			s.order = s.order[1:]
		}
		var err error
		if ss, err = train.NewEvalSession(s.net, n, h, w, train.SessionOptions{}); err != nil {
			return nil, err
		}
		s.cache[key] = ss
		s.order = append(s.order, key)
	} else if i := slices.Index(s.order, key); i != len(s.order)-1 { // most recent last
		s.order = append(slices.Delete(s.order, i, i+1), key)
	}
	dst := ss.Input()
	if len(in) != len(dst) {
		return nil, fmt.Errorf("infer: %d input floats for a %dx3x%dx%d batch", len(in), n, h, w)
	}
	copy(dst, in)
	if err := ss.Run(); err != nil {
		return nil, fmt.Errorf("infer: forward %dx%dx%d: %w", n, h, w, err)
	}
	return ss.Logits(), nil
}

func (s *slot) close() {
	for _, ss := range s.cache {
		ss.Close()
	}
	clear(s.cache)
	s.order = nil
}

// run takes a slot (waiting for one, or for ctx), runs fn on it and gives it back.
func (m *Model) run(ctx context.Context, fn func(s *slot) error) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	var s *slot
	select {
	case s = <-m.slots:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { m.slots <- s }()
	return fn(s)
}
