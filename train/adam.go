package train

import "math"

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
