// Package graphs is vggo's layer vocabulary and model zoo: AlexNet, VGG11/13/16/19 (with
// or without batch norm), VGG16-SegNet and VGG19-UNet, each built as a Gorgonia expression
// graph over named parameters whose names are the state_dict keys of the equivalent PyTorch
// modules: torchvision's for the VGGs (features.0.weight, classifier.6.bias), conv1..conv5
// and classifier.N for AlexNet, encoder.N and decoder.N for SegNet, b1..b5, u4..u1 and
// head for U-Net.
//
// A Model owns its parameters and buffers. Build makes a graph for one (batch, height,
// width, mode); every graph built from a model reads and writes the same parameter
// tensors, so a training graph and an evaluation graph stay in step without copying.
package graphs

import (
	"fmt"
	"math"
	"strings"

	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/label"
)

// Mode selects training behaviour (batch statistics, dropout) or evaluation behaviour
// (running statistics, no dropout). It is fixed when a graph is built.
type Mode int

const (
	Train Mode = iota
	Eval
)

func (m Mode) String() string {
	if m == Train {
		return "train"
	}
	return "eval"
}

// Unpool modes of the SegNet decoder.
const (
	UnpoolUpsample = "upsample" // nearest-neighbour x2 (the default)
	UnpoolIndices  = "indices"  // max-unpooling with the encoder's pooling indices (real SegNet)
)

// Config says which model to build. The zero values of the optional fields take the
// architecture's defaults (see Architectures).
type Config struct {
	Arch    string  `json:"arch"`                 // one of Names()
	Classes int     `json:"classes"`              // 0: the architecture's default (1000 or 21)
	InputH  int     `json:"input_h"`              // reference input height (classifiers: sets the FC size); 0: default
	InputW  int     `json:"input_w"`              // reference input width; 0: InputH
	Mult    float64 `json:"width_mult"`           // channel-width multiplier, 1/k for integer k; 0 means 1
	Dropout float64 `json:"dropout"`              // classifier dropout rate; 0 means 0.5 (see NoDrop)
	NoDrop  bool    `json:"no_dropout,omitempty"` // disable dropout entirely (rate 0)
	Unpool  string  `json:"unpool,omitempty"`     // vgg16-segnet decoder: "upsample" (default) or "indices"
	Seed    uint64  `json:"seed"`                 // initialisation and dropout seed
}

// ArchInfo describes one architecture of the zoo.
type ArchInfo struct {
	Name          string
	Task          label.Task
	Classes       int // default class count
	Size          int // default (square) input size
	Stride        int // inputs must be divisible by this (segmentation); classifiers need Size/Stride >= 1
	build         func(n *net, x act) act
	hasDropout    bool
	hasUnpoolMode bool
}

var architectures = []ArchInfo{
	{Name: "alexnet", Task: label.Classification, Classes: 1000, Size: 224, Stride: 1, build: buildAlexNet, hasDropout: true},
	{Name: "vgg11", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg11, false), hasDropout: true},
	{Name: "vgg13", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg13, false), hasDropout: true},
	{Name: "vgg16", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg16, false), hasDropout: true},
	{Name: "vgg19", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg19, false), hasDropout: true},
	{Name: "vgg11-bn", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg11, true), hasDropout: true},
	{Name: "vgg13-bn", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg13, true), hasDropout: true},
	{Name: "vgg16-bn", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg16, true), hasDropout: true},
	{Name: "vgg19-bn", Task: label.Classification, Classes: 1000, Size: 224, Stride: 32, build: vggClassifier(vgg19, true), hasDropout: true},
	{Name: "vgg16-segnet", Task: label.Segmentation, Classes: 21, Size: 512, Stride: 32, build: buildSegNet, hasUnpoolMode: true},
	{Name: "vgg19-unet", Task: label.Segmentation, Classes: 21, Size: 512, Stride: 16, build: buildUNet},
}

// Names lists the architectures, in the zoo's order.
func Names() []string {
	out := make([]string, len(architectures))
	for i, a := range architectures {
		out[i] = a.Name
	}
	return out
}

// Lookup returns the architecture called name. Underscores are accepted for dashes
// (vgg16_segnet), as the PyTorch reference spells them.
func Lookup(name string) (ArchInfo, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
	for _, a := range architectures {
		if a.Name == n {
			return a, nil
		}
	}
	return ArchInfo{}, fmt.Errorf("graphs: unknown model %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// Normalize fills in the architecture's defaults and checks every option, returning the
// configuration a model is actually built with.
func (c Config) Normalize() (Config, ArchInfo, error) {
	info, err := Lookup(c.Arch)
	if err != nil {
		return c, info, err
	}
	c.Arch = info.Name
	if c.Classes == 0 {
		c.Classes = info.Classes
	}
	if c.Classes < 1 || (info.Task == label.Segmentation && c.Classes > label.Ignore) {
		return c, info, fmt.Errorf("graphs: %s: classes %d out of range (segmentation: 1..255, since 255 marks ignored pixels; classification: >= 1)", c.Arch, c.Classes)
	}
	if c.InputH == 0 {
		c.InputH = info.Size
	}
	if c.InputW == 0 {
		c.InputW = c.InputH
	}
	if c.Mult == 0 {
		c.Mult = 1
	}
	if _, err := c.Divisor(); err != nil {
		return c, info, err
	}
	switch {
	case c.NoDrop:
		c.Dropout = 0
	case c.Dropout == 0:
		c.Dropout = 0.5
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return c, info, fmt.Errorf("graphs: dropout %g out of range [0, 1)", c.Dropout)
	}
	if c.Dropout != 0.5 && !c.NoDrop && !info.hasDropout {
		return c, info, fmt.Errorf("graphs: %s has no dropout layer; --dropout does not apply", c.Arch)
	}
	if !info.hasDropout {
		c.Dropout = 0
	}
	switch {
	case c.Unpool == "" && info.hasUnpoolMode:
		c.Unpool = UnpoolUpsample
	case c.Unpool == "":
	case !info.hasUnpoolMode:
		return c, info, fmt.Errorf("graphs: %s has no unpooling layers; --unpool applies to vgg16-segnet only", c.Arch)
	case c.Unpool != UnpoolUpsample && c.Unpool != UnpoolIndices:
		return c, info, fmt.Errorf("graphs: unknown unpool mode %q (valid: %s, %s)", c.Unpool, UnpoolUpsample, UnpoolIndices)
	}
	if err := info.CheckInput(c.InputH, c.InputW); err != nil {
		return c, info, err
	}
	return c, info, nil
}

// Divisor returns k for a width multiplier of 1/k: every conv and hidden FC width is
// divided by k, rounding down, as width_div does in the PyTorch reference.
func (c Config) Divisor() (int, error) {
	m := c.Mult
	if m == 0 {
		m = 1
	}
	if m <= 0 || m > 1 {
		return 0, fmt.Errorf("graphs: width multiplier %g out of range (0, 1]", m)
	}
	k := math.Round(1 / m)
	if math.Abs(1/k-m) > 1e-9*m+1e-12 {
		return 0, fmt.Errorf("graphs: width multiplier %g is not 1/k for an integer k (try %g or %g)", m, 1/math.Floor(1/m), 1/math.Ceil(1/m))
	}
	if k > 64 {
		return 0, fmt.Errorf("graphs: width multiplier %g too small (smallest 1/64)", m)
	}
	return int(k), nil
}

// CheckInput tells whether an input of h×w pixels fits the architecture.
func (a ArchInfo) CheckInput(h, w int) error {
	if h < 1 || w < 1 {
		return fmt.Errorf("graphs: %s: input %dx%d is empty", a.Name, h, w)
	}
	switch a.Name {
	case "alexnet":
		if alexOut(h) < 1 || alexOut(w) < 1 {
			return fmt.Errorf("graphs: alexnet: input %dx%d too small (its three 3x3/2 poolings need at least 57x57)", h, w)
		}
	default:
		if h%a.Stride != 0 || w%a.Stride != 0 {
			return fmt.Errorf("graphs: %s: input %dx%d must be a multiple of %d in both dimensions", a.Name, h, w, a.Stride)
		}
	}
	return nil
}

// Param is one named parameter or buffer. Data is the backing of T; every graph built from
// the model reads it, and the optimizer and checkpoint loader write it in place.
type Param struct {
	Name      string
	Shape     []int
	Data      []float32
	T         *tensor.Dense
	Trainable bool // false for batch-norm running statistics
	NoDecay   bool // biases and batch-norm affine parameters (exempt from weight decay on request)
	init      initKind
	fan       int
}

// Model is an architecture with its parameters allocated and initialised.
type Model struct {
	Config Config
	Info   ArchInfo
	Params []*Param // state_dict order: parameters and buffers interleaved as in PyTorch
	byName map[string]*Param
	bn     map[string]*ops.BatchNormState
	drop   map[string]*ops.DropoutState
}

// New allocates a model and initialises it as torchvision does for VGG (Kaiming normal,
// fan_out, for convolutions; N(0, 0.01) for linear layers; zero biases; batch norm
// gamma 1, beta 0, running mean 0, running variance 1), seeded by cfg.Seed: the same seed
// gives the same weights.
func New(cfg Config) (*Model, error) {
	n, err := specPass(cfg)
	if err != nil {
		return nil, err
	}
	cfg, info := n.cfg, n.info
	m := &Model{Config: cfg, Info: info, byName: map[string]*Param{}, bn: map[string]*ops.BatchNormState{}, drop: map[string]*ops.DropoutState{}}
	for _, ps := range n.params {
		p := &Param{Name: ps.name, Shape: ps.shape, Trainable: ps.trainable, NoDecay: ps.noDecay, init: ps.init, fan: ps.fan}
		p.Data = make([]float32, prod(ps.shape))
		p.T = tensor.New(tensor.WithShape(ps.shape...), tensor.WithBacking(p.Data))
		initParam(p, cfg.Seed)
		m.Params = append(m.Params, p)
		m.byName[p.Name] = p
	}
	for _, name := range n.bnLayers {
		mean, vr := m.byName[name+".running_mean"], m.byName[name+".running_var"]
		st := ops.NewBatchNormState(name, len(mean.Data))
		st.RunningMean, st.RunningVar = mean.Data, vr.Data
		m.bn[name] = st
	}
	for i, name := range n.dropLayers {
		m.drop[name] = &ops.DropoutState{Seed: cfg.Seed, Layer: uint64(i + 1)}
	}
	return m, nil
}

// Param returns the parameter or buffer called name, or nil.
func (m *Model) Param(name string) *Param { return m.byName[name] }

// Trainable returns the trainable parameters in state_dict order.
func (m *Model) Trainable() []*Param {
	var out []*Param
	for _, p := range m.Params {
		if p.Trainable {
			out = append(out, p)
		}
	}
	return out
}

// SetStep sets the training step that dropout masks are derived from, so that a step's
// masks depend only on (seed, layer, step) and a resumed run draws the same ones.
func (m *Model) SetStep(step uint64) {
	for _, d := range m.drop {
		d.Step = step
	}
}

// SetSample sets the index, in the step's whole batch, of the first sample the next run
// sees: a step split into micro-batches (gradient accumulation) or between the ranks of a
// data-parallel run then draws the dropout masks of the unsplit batch.
func (m *Model) SetSample(sample uint64) {
	for _, d := range m.drop {
		d.Sample = sample
	}
}

// SetBatchNormSync makes every batch norm layer normalise training batches with the
// statistics of all ranks of a data-parallel run (SyncBatchNorm); nil restores local
// statistics.
func (m *Model) SetBatchNormSync(r ops.StatReducer) {
	for _, st := range m.bn {
		st.Sync = r
	}
}

// Counts returns the parameter counts the Keras way: total, trainable, non-trainable
// (batch-norm running statistics).
func (m *Model) Counts() (total, trainable, nonTrainable int) {
	for _, p := range m.Params {
		n := len(p.Data)
		total += n
		if p.Trainable {
			trainable += n
		} else {
			nonTrainable += n
		}
	}
	return
}

// ParamSpec is the name and shape of one parameter or buffer of an architecture.
type ParamSpec struct {
	Name      string
	Shape     []int
	Trainable bool
}

// Specs returns the parameters and buffers a configuration has, without allocating them.
func Specs(cfg Config) ([]ParamSpec, error) {
	n, err := specPass(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]ParamSpec, len(n.params))
	for i, p := range n.params {
		out[i] = ParamSpec{Name: p.name, Shape: p.shape, Trainable: p.trainable}
	}
	return out, nil
}

// specPass runs the architecture's builder without a graph: shapes, parameter specs and
// summary rows, nothing allocated.
func specPass(cfg Config) (*net, error) {
	cfg, info, err := cfg.Normalize()
	if err != nil {
		return nil, err
	}
	n := &net{cfg: cfg, info: info}
	info.build(n, n.input(1, cfg.InputH, cfg.InputW))
	if n.err != nil {
		return nil, n.err
	}
	return n, nil
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}
