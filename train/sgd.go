package train

import (
	"fmt"
	"math"
)

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
