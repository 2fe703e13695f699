package ops

import (
	"sync/atomic"
	"time"

	G "gorgonia.org/gorgonia"
)

// Kind is the category an op's running time is counted under in a Profile.
type Kind int

// The op kinds of a Profile. Gradient ops count under their forward op's kind.
const (
	KindConv       Kind = iota // Conv2D and its gradients
	KindLinear                 // Linear and its gradients
	KindBatchNorm              // BatchNorm2D and its gradients
	KindPool                   // max pooling, max unpooling, upsampling
	KindActivation             // ReLU
	KindLoss                   // loss ops (package losses)
	KindOptimizer              // the optimizer step (timed by the caller)
	KindOther                  // concat, flatten, dropout
	NumKinds
)

var kindNames = [NumKinds]string{"conv", "linear", "batchnorm", "pool", "activation", "loss", "optimizer", "other"}

func (k Kind) String() string {
	if k < 0 || k >= NumKinds {
		return "kind?"
	}
	return kindNames[k]
}

// Profile accumulates the wall time spent in ops by Kind. It is safe for concurrent
// use. Ops report to the Profile attached to them (Attach); an op without one pays a nil
// check and nothing else.
type Profile struct {
	ns    [NumKinds]atomic.Int64
	calls [NumKinds]atomic.Int64
}

// NewProfile returns an empty Profile.
func NewProfile() *Profile { return new(Profile) }

// Profiled is implemented by ops that can report their time to a Profile.
type Profiled interface {
	SetProfile(p *Profile)
}

// Attach makes every op of g that implements Profiled report to p (nil detaches them),
// and returns how many ops it reached. Call it after the graph is complete (after G.Grad,
// so that gradient ops are included) and before running it.
func (p *Profile) Attach(g *G.ExprGraph) int {
	n := 0
	for _, node := range g.AllNodes() {
		if op, ok := node.Op().(Profiled); ok {
			op.SetProfile(p)
			n++
		}
	}
	return n
}

// Add counts d under kind k. A nil Profile ignores it.
func (p *Profile) Add(k Kind, d time.Duration) {
	if p == nil {
		return
	}
	p.ns[k].Add(int64(d))
	p.calls[k].Add(1)
}

// Start returns the time to pass to Stop; on a nil Profile it does not read the clock.
func (p *Profile) Start() time.Time {
	if p == nil {
		return time.Time{}
	}
	return time.Now()
}

// Stop counts the time since t0 (from Start) under k. A nil Profile ignores it.
func (p *Profile) Stop(k Kind, t0 time.Time) {
	if p == nil {
		return
	}
	p.Add(k, time.Since(t0))
}

// Time returns the total time counted under k.
func (p *Profile) Time(k Kind) time.Duration { return time.Duration(p.ns[k].Load()) }

// Calls returns how many times k was counted.
func (p *Profile) Calls(k Kind) int64 { return p.calls[k].Load() }

// Total returns the time counted under all kinds.
func (p *Profile) Total() time.Duration {
	var t time.Duration
	for k := range NumKinds {
		t += p.Time(k)
	}
	return t
}

// Reset zeroes every counter.
func (p *Profile) Reset() {
	for k := range NumKinds {
		p.ns[k].Store(0)
		p.calls[k].Store(0)
	}
}
