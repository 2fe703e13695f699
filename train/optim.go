package train

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vggo/vggo/internal/parallel"
)

// Param is one trainable tensor as an optimizer sees it: its flat values and gradient
// (of equal length) and whether weight decay skips it. The caller sets NoDecay for
// biases and batch-norm parameters when the user exempts them from decay (a torch
// param group with weight_decay=0).
type Param struct {
	Name    string
	Data    []float32
	Grad    []float32
	NoDecay bool
}

// Optimizer updates parameters from their gradients and can export its state for a
// checkpoint and import it again, so that a resumed run continues bit for bit.
//
// Step applies one update with learning rate lr (from a Schedule). params must come in
// the same order, with the same names and lengths, at every call. SetState replaces
// the state before the first Step of a resumed run.
type Optimizer interface {
	Name() string
	Step(params []Param, lr float64) error
	State() State
	SetState(s State, params []Param) error
}

// State is an optimizer's exportable state.
//
// Tensors holds one flat buffer per parameter and kind, keyed
// "optim.<kind>.<param name>" with torch's state names for kind: momentum_buffer (SGD
// with momentum), exp_avg and exp_avg_sq (Adam, AdamW). They are empty before the first
// step. Store them as F32 tensors of shape [len] in the checkpoint, and Optimizer and
// Step as metadata strings (see Metadata and RestoreState), so the step count survives
// exactly. The buffers returned by State alias the optimizer's own, and change at the
// next Step: save (or copy) them before stepping again.
type State struct {
	Optimizer string               // the Name of the optimizer that produced it
	Step      int64                // completed steps
	Tensors   map[string][]float32 // "optim.<kind>.<param name>"
}

// Checkpoint metadata keys for a State's scalar fields, and the prefix of its tensors.
const (
	MetaOptimizer = "optim.name"
	MetaOptimStep = "optim.step"
	StatePrefix   = "optim."
)

// Keys returns the names of s.Tensors, sorted.
func (s State) Keys() []string {
	keys := make([]string, 0, len(s.Tensors))
	for k := range s.Tensors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Metadata returns the state's scalar fields as checkpoint metadata strings:
// optim.name and optim.step (decimal).
func (s State) Metadata() map[string]string {
	return map[string]string{MetaOptimizer: s.Optimizer, MetaOptimStep: strconv.FormatInt(s.Step, 10)}
}

// RestoreState rebuilds a State from checkpoint metadata (optim.name, optim.step) and
// the checkpoint's tensors by name; it keeps those whose names start with "optim.".
func RestoreState(metadata map[string]string, tensors map[string][]float32) (State, error) {
	name, ok := metadata[MetaOptimizer]
	if !ok {
		return State{}, errors.New("train: the checkpoint has no optimizer state (metadata optim.name is missing); it holds weights only, so start the optimizer afresh")
	}
	step, err := strconv.ParseInt(metadata[MetaOptimStep], 10, 64)
	if err != nil || step < 0 {
		return State{}, fmt.Errorf("train: checkpoint metadata optim.step = %q is not a step count", metadata[MetaOptimStep])
	}
	s := State{Optimizer: name, Step: step, Tensors: map[string][]float32{}}
	for k, v := range tensors {
		if strings.HasPrefix(k, StatePrefix) {
			s.Tensors[k] = v
		}
	}
	return s, nil
}

// OptimizerConfig selects and configures an optimizer; it is a plain value meant to be
// part of the saved training configuration. Fields that do not apply to Kind must be
// zero: NewOptimizer refuses them rather than ignoring them.
type OptimizerConfig struct {
	Kind        string  // "sgd", "adam" or "adamw"
	Momentum    float64 // sgd
	Dampening   float64 // sgd
	Nesterov    bool    // sgd
	Beta1       float64 // adam, adamw
	Beta2       float64 // adam, adamw
	Eps         float64 // adam, adamw
	WeightDecay float64 // all: L2 added to the gradient (sgd, adam) or decoupled (adamw)
}

// DefaultOptimizerConfig returns torch.optim's defaults for kind: SGD without
// momentum, Adam with betas (0.9, 0.999) and eps 1e-8, AdamW the same with weight
// decay 0.01. An unknown kind gives a config that NewOptimizer refuses.
func DefaultOptimizerConfig(kind string) OptimizerConfig {
	switch kind {
	case "adam":
		return OptimizerConfig{Kind: kind, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	case "adamw":
		return OptimizerConfig{Kind: kind, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	}
	return OptimizerConfig{Kind: kind}
}

// NewOptimizer builds the optimizer c describes.
func NewOptimizer(c OptimizerConfig) (Optimizer, error) {
	var unused []string
	switch c.Kind {
	case "sgd":
		for _, f := range []struct {
			name string
			set  bool
		}{{"beta1", c.Beta1 != 0}, {"beta2", c.Beta2 != 0}, {"eps", c.Eps != 0}} {
			if f.set {
				unused = append(unused, f.name)
			}
		}
		if len(unused) > 0 {
			return nil, fmt.Errorf("train: optimizer sgd does not use %s (they are for adam and adamw; leave them 0)", strings.Join(unused, ", "))
		}
		return NewSGD(SGDConfig{Momentum: c.Momentum, Dampening: c.Dampening, Nesterov: c.Nesterov, WeightDecay: c.WeightDecay})
	case "adam", "adamw":
		for _, f := range []struct {
			name string
			set  bool
		}{{"momentum", c.Momentum != 0}, {"dampening", c.Dampening != 0}, {"nesterov", c.Nesterov}} {
			if f.set {
				unused = append(unused, f.name)
			}
		}
		if len(unused) > 0 {
			return nil, fmt.Errorf("train: optimizer %s does not use %s (they are for sgd; %s's momentum is beta1)", c.Kind, strings.Join(unused, ", "), c.Kind)
		}
		ac := AdamConfig{Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay}
		if c.Kind == "adamw" {
			return NewAdamW(ac)
		}
		return NewAdam(ac)
	}
	return nil, fmt.Errorf("train: unknown optimizer %q (choose sgd, adam or adamw)", c.Kind)
}

func checkHyper(opt, name string, v, lo, hi float64, hiOpen bool) error {
	if math.IsNaN(v) || v < lo || v > hi || (hiOpen && v == hi) {
		bracket := "]"
		if hiOpen {
			bracket = ")"
		}
		return fmt.Errorf("train: %s: %s = %v is outside [%v, %v%s", opt, name, v, lo, hi, bracket)
	}
	return nil
}

// SGDConfig configures SGD.
type SGDConfig struct {
	Momentum    float64
	Dampening   float64
	Nesterov    bool
	WeightDecay float64
}

// SGD is torch.optim.SGD (without maximize), computed in float32 as its CPU
// single-tensor implementation does, one rounding per elementary operation:
//
//	g = grad + wd·p                      (if wd != 0 and the param decays)
//	buf = g                              (first step)
//	buf = momentum·buf + (1-dampening)·g (later steps, if momentum != 0)
//	g = g + momentum·buf if nesterov, else g = buf
//	p = p - lr·g
//
// Torch's vectorized CPU kernels may fuse a multiply and an add, so expect agreement
// with torch to the last bit or two; runs of vggo itself are bit-reproducible. An SGD
// is not safe for concurrent use.
type SGD struct {
	cfg  SGDConfig
	step int64
	lay  *layout
	bufs [][]float32 // momentum buffers, nil until the first step or without momentum
}

// NewSGD returns an SGD optimizer. As in torch, momentum, dampening and weight decay
// must be non-negative, and Nesterov momentum needs momentum > 0 and dampening 0.
func NewSGD(c SGDConfig) (*SGD, error) {
	for _, h := range []struct {
		name string
		v    float64
	}{{"momentum", c.Momentum}, {"dampening", c.Dampening}, {"weight decay", c.WeightDecay}} {
		if err := checkHyper("sgd", h.name, h.v, 0, math.MaxFloat64, false); err != nil {
			return nil, err
		}
	}
	if c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0) {
		return nil, fmt.Errorf("train: sgd: nesterov needs momentum > 0 and dampening 0 (got momentum %v, dampening %v)", c.Momentum, c.Dampening)
	}
	return &SGD{cfg: c}, nil
}

// Name is "sgd".
func (o *SGD) Name() string { return "sgd" }

// Step applies one SGD update.
func (o *SGD) Step(params []Param, lr float64) error {
	lay, err := prepare(o.Name(), o.lay, params, lr)
	o.lay = lay
	if err != nil {
		return err
	}
	c := o.cfg
	first := o.step == 0
	o.step++
	if c.Momentum != 0 && o.bufs == nil {
		o.bufs = make([][]float32, len(params))
		for i, p := range params {
			o.bufs[i] = make([]float32, len(p.Data))
		}
	}
	k := sgdKernel{
		wd:       float32(c.WeightDecay),
		mom:      float32(c.Momentum),
		keep:     float32(1 - c.Dampening), // alpha of buf.add_(grad, alpha=1-dampening)
		negLR:    float32(-lr),
		first:    first,
		nesterov: c.Nesterov,
	}
	o.lay.run(func(i, lo, hi int) {
		p, g := params[i].Data[lo:hi], params[i].Grad[lo:hi]
		l2 := k.wd != 0 && !params[i].NoDecay
		if o.bufs == nil {
			k.plain(p, g, l2)
		} else {
			k.momentum(p, g, o.bufs[i][lo:hi], l2)
		}
	})
	return nil
}

// sgdKernel holds one SGD step's float32 coefficients.
type sgdKernel struct {
	wd, mom, keep, negLR float32
	first, nesterov      bool
}

// plain is SGD without momentum: p += -lr·(g + wd·p).
func (k *sgdKernel) plain(p, g []float32, l2 bool) {
	g = g[:len(p)]
	wd, negLR := k.wd, k.negLR
	if l2 {
		for j, pj := range p {
			p[j] = pj + float32(negLR*(g[j]+float32(wd*pj)))
		}
		return
	}
	for j, pj := range p {
		p[j] = pj + float32(negLR*g[j])
	}
}

// momentum is SGD with a momentum buffer.
func (k *sgdKernel) momentum(p, g, buf []float32, l2 bool) {
	g, buf = g[:len(p)], buf[:len(p)]
	wd, mom, keep, negLR := k.wd, k.mom, k.keep, k.negLR
	first, nesterov := k.first, k.nesterov
	for j, pj := range p {
		gj := g[j]
		if l2 {
			gj += float32(wd * pj)
		}
		b := gj
		if !first {
			b = float32(buf[j]*mom) + float32(keep*gj)
		}
		buf[j] = b
		if nesterov {
			gj += float32(mom * b)
		} else {
			gj = b
		}
		p[j] = pj + float32(negLR*gj)
	}
}

// State exports the momentum buffers ("optim.momentum_buffer.<name>") and step count.
func (o *SGD) State() State {
	s := State{Optimizer: o.Name(), Step: o.step, Tensors: map[string][]float32{}}
	for i, b := range o.bufs {
		s.Tensors["optim.momentum_buffer."+o.lay.names[i]] = b
	}
	return s
}

// SetState imports a state exported by an SGD optimizer for the same parameters. It
// copies the buffers.
func (o *SGD) SetState(s State, params []Param) error {
	kinds := []string(nil)
	if o.cfg.Momentum != 0 && s.Step > 0 {
		kinds = []string{"momentum_buffer"}
	}
	bufs, err := importState(o.Name(), s, params, kinds)
	if err != nil {
		return err
	}
	o.lay = newLayout(params)
	o.step = s.Step
	o.bufs = nil
	if len(kinds) > 0 {
		o.bufs = bufs[0]
	}
	return nil
}

// AdamConfig configures Adam and AdamW.
type AdamConfig struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
}

// Adam is torch.optim.Adam (or AdamW, with decoupled weight decay), without amsgrad
// and maximize, computed in float32 as torch's CPU single-tensor implementation does,
// one rounding per elementary operation. With t the step count (from 1):
//
//	p = p·(1 - lr·wd)                    (AdamW, if the param decays)
//	g = grad + wd·p                      (Adam, if wd != 0 and the param decays)
//	m = β1·m + (1-β1)·g
//	v = β2·v + (1-β2)·g·g
//	denom = sqrt(v) / sqrt(1-β2^t) + eps
//	p = p + (-lr/(1-β1^t))·m / denom
//
// The bias corrections and step size are computed in float64 and rounded to float32,
// as torch does with Python floats. Torch ≥ 2.0 updates m with
// exp_avg.lerp_(grad, 1-β1), algebraically the same as the line above, and its
// vectorized CPU kernels may fuse a multiply and an add: expect agreement with torch to
// the last bit or two, not bit for bit. Runs of vggo itself are bit-reproducible. An
// Adam is not safe for concurrent use.
type Adam struct {
	cfg       AdamConfig
	decoupled bool
	step      int64
	lay       *layout
	m, v      [][]float32
}

// NewAdam returns an Adam optimizer (weight decay as L2 added to the gradient).
// Betas must lie in [0, 1), eps and weight decay must be non-negative.
func NewAdam(c AdamConfig) (*Adam, error) { return newAdam(c, false) }

// NewAdamW returns an AdamW optimizer (decoupled weight decay).
func NewAdamW(c AdamConfig) (*Adam, error) { return newAdam(c, true) }

func newAdam(c AdamConfig, decoupled bool) (*Adam, error) {
	a := &Adam{cfg: c, decoupled: decoupled}
	for _, h := range []struct {
		name   string
		v, hi  float64
		hiOpen bool
	}{{"beta1", c.Beta1, 1, true}, {"beta2", c.Beta2, 1, true}, {"eps", c.Eps, math.MaxFloat64, false}, {"weight decay", c.WeightDecay, math.MaxFloat64, false}} {
		if err := checkHyper(a.Name(), h.name, h.v, 0, h.hi, h.hiOpen); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Name is "adam" or "adamw".
func (a *Adam) Name() string {
	if a.decoupled {
		return "adamw"
	}
	return "adam"
}

// Step applies one Adam (AdamW) update.
func (a *Adam) Step(params []Param, lr float64) error {
	lay, err := prepare(a.Name(), a.lay, params, lr)
	a.lay = lay
	if err != nil {
		return err
	}
	if a.m == nil {
		a.m = make([][]float32, len(params))
		a.v = make([][]float32, len(params))
		for i, p := range params {
			a.m[i] = make([]float32, len(p.Data))
			a.v[i] = make([]float32, len(p.Data))
		}
	}
	a.step++
	c := a.cfg
	t := float64(a.step)
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2 := 1 - math.Pow(c.Beta2, t)
	k := adamKernel{
		wd:        float32(c.WeightDecay),
		decay:     float32(1 - lr*c.WeightDecay), // param.mul_(1 - lr*weight_decay)
		b1:        float32(c.Beta1),
		omb1:      float32(1 - c.Beta1),
		b2:        float32(c.Beta2),
		omb2:      float32(1 - c.Beta2),
		bc2sqrt:   float32(math.Sqrt(bc2)),
		eps:       float32(c.Eps),
		negStep:   float32(-(lr / bc1)), // addcdiv_ value=-step_size
		decoupled: a.decoupled,
	}
	a.lay.run(func(i, lo, hi int) {
		p := params[i].Data[lo:hi]
		k.update(p, params[i].Grad[lo:hi], a.m[i][lo:hi], a.v[i][lo:hi], k.wd != 0 && !params[i].NoDecay)
	})
	return nil
}

// adamKernel holds one Adam step's float32 coefficients.
type adamKernel struct {
	wd, decay, b1, omb1, b2, omb2, bc2sqrt, eps, negStep float32
	decoupled                                            bool
}

// update applies the step to one run of elements; dec says whether they decay.
func (k *adamKernel) update(p, g, m, v []float32, dec bool) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	wd, decay, b1, omb1, b2, omb2, bc2sqrt, eps, negStep := k.wd, k.decay, k.b1, k.omb1, k.b2, k.omb2, k.bc2sqrt, k.eps, k.negStep
	l2, decoupled := dec && !k.decoupled, dec && k.decoupled
	for j, pj := range p {
		gj := g[j]
		if decoupled {
			pj *= decay
		}
		if l2 {
			gj += float32(wd * pj)
		}
		mj := float32(m[j]*b1) + float32(omb1*gj)
		vj := float32(v[j]*b2) + float32(float32(omb2*gj)*gj)
		m[j], v[j] = mj, vj
		denom := float32(math.Sqrt(float64(vj)))/bc2sqrt + eps
		p[j] = pj + float32(negStep*mj)/denom
	}
}

// State exports the moments ("optim.exp_avg.<name>", "optim.exp_avg_sq.<name>") and
// the step count.
func (a *Adam) State() State {
	s := State{Optimizer: a.Name(), Step: a.step, Tensors: map[string][]float32{}}
	for i := range a.m {
		s.Tensors["optim.exp_avg."+a.lay.names[i]] = a.m[i]
		s.Tensors["optim.exp_avg_sq."+a.lay.names[i]] = a.v[i]
	}
	return s
}

// SetState imports a state exported by the same kind of optimizer (adam or adamw) for
// the same parameters. It copies the buffers.
func (a *Adam) SetState(s State, params []Param) error {
	var kinds []string
	if s.Step > 0 {
		kinds = []string{"exp_avg", "exp_avg_sq"}
	}
	bufs, err := importState(a.Name(), s, params, kinds)
	if err != nil {
		return err
	}
	a.lay = newLayout(params)
	a.step = s.Step
	a.m, a.v = nil, nil
	if len(kinds) > 0 {
		a.m, a.v = bufs[0], bufs[1]
	}
	return nil
}

// importState checks s against the optimizer name and params and returns copies of
// its buffers, bufs[k][i] for kinds[k] and params[i]. Every expected key must be
// present with the param's length, and no other key may be.
func importState(opt string, s State, params []Param, kinds []string) ([][][]float32, error) {
	if s.Optimizer != opt {
		return nil, fmt.Errorf("train: %s: the optimizer state is from %q; resume with the same optimizer, or start the optimizer afresh", opt, s.Optimizer)
	}
	if s.Step < 0 {
		return nil, fmt.Errorf("train: %s: negative step count %d in the optimizer state", opt, s.Step)
	}
	if err := checkNames(opt, params); err != nil {
		return nil, err
	}
	var problems []string
	used := map[string]bool{}
	bufs := make([][][]float32, len(kinds))
	for k, kind := range kinds {
		bufs[k] = make([][]float32, len(params))
		for i, p := range params {
			key := StatePrefix + kind + "." + p.Name
			used[key] = true
			b, ok := s.Tensors[key]
			switch {
			case !ok:
				problems = append(problems, "missing "+key)
			case len(b) != len(p.Data):
				problems = append(problems, fmt.Sprintf("%s has %d values, param %s has %d", key, len(b), p.Name, len(p.Data)))
			default:
				bufs[k][i] = slices.Clone(b)
			}
		}
	}
	for _, key := range s.Keys() {
		if !used[key] {
			problems = append(problems, "unexpected "+key)
		}
	}
	if len(problems) == 0 {
		return bufs, nil
	}
	const maxLines = 20
	msg := fmt.Sprintf("train: %s: the optimizer state (step %d) does not fit the %d parameters; was it saved for another model or with other optimizer settings? start the optimizer afresh to train on:", opt, s.Step, len(params))
	for i, p := range problems {
		if i == maxLines {
			msg += fmt.Sprintf("\n  and %d more", len(problems)-i)
			break
		}
		msg += "\n  " + p
	}
	return nil, errors.New(msg)
}

func checkNames(opt string, params []Param) error {
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p.Name == "" {
			return fmt.Errorf("train: %s: param %d has no name", opt, i)
		}
		if seen[p.Name] {
			return fmt.Errorf("train: %s: param name %q appears twice", opt, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// prepare validates a Step call: lr, gradients, and the same parameter list as
// before (names and lengths). It returns the layout, new on the first call.
func prepare(opt string, lay *layout, params []Param, lr float64) (*layout, error) {
	if math.IsNaN(lr) || math.IsInf(lr, 0) || lr < 0 {
		return lay, fmt.Errorf("train: %s: learning rate %v is not a finite non-negative number", opt, lr)
	}
	for _, p := range params {
		if len(p.Grad) != len(p.Data) {
			return lay, fmt.Errorf("train: %s: param %s has %d values but %d gradient values (is it missing from the backward pass?)", opt, p.Name, len(p.Data), len(p.Grad))
		}
	}
	if lay == nil {
		if err := checkNames(opt, params); err != nil {
			return nil, err
		}
		return newLayout(params), nil
	}
	if len(params) != len(lay.names) {
		return lay, fmt.Errorf("train: %s: got %d params, the optimizer holds state for %d (pass the same parameter list at every step)", opt, len(params), len(lay.names))
	}
	for i, p := range params {
		if p.Name != lay.names[i] || len(p.Data) != lay.sizes[i] {
			return lay, fmt.Errorf("train: %s: param %d is %s with %d values, the optimizer holds state for %s with %d (pass the same parameter list, in the same order, at every step)",
				opt, i, p.Name, len(p.Data), lay.names[i], lay.sizes[i])
		}
	}
	return lay, nil
}

// chunkSize is the number of elements one goroutine updates at a time: 128 KiB per
// float32 stream.
const chunkSize = 1 << 15

// parallelMin is the total number of elements below which Step runs on the calling
// goroutine.
const parallelMin = 1 << 16

// layout is the parameter list an optimizer's state belongs to, cut into chunks for
// the parallel update.
type layout struct {
	names  []string
	sizes  []int
	total  int
	chunks []chunk
	pool   parallel.Pool
}

type chunk struct{ param, lo, hi int }

func newLayout(params []Param) *layout {
	l := &layout{names: make([]string, len(params)), sizes: make([]int, len(params))}
	for i, p := range params {
		l.names[i], l.sizes[i] = p.Name, len(p.Data)
		l.total += len(p.Data)
		for lo := 0; lo < len(p.Data); lo += chunkSize {
			l.chunks = append(l.chunks, chunk{i, lo, min(lo+chunkSize, len(p.Data))})
		}
	}
	return l
}

// run calls fn on every chunk, spreading chunks over the layout's pool.
// Updates are element-wise, so the result does not depend on the split.
func (l *layout) run(fn func(param, lo, hi int)) {
	if l.total < parallelMin {
		for _, c := range l.chunks {
			fn(c.param, c.lo, c.hi)
		}
		return
	}
	l.pool.For(len(l.chunks), func(lo, hi int) {
		for _, c := range l.chunks[lo:hi] {
			fn(c.param, c.lo, c.hi)
		}
	})
}
