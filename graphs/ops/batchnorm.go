package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BatchNormState holds one batch norm layer's buffers and settings (PyTorch's
// nn.BatchNorm2d). Share it between the training and the evaluation graph of a model.
//
// RunningMean and RunningVar are read by every evaluation-mode run and updated in place by
// every training-mode run: running = (1-Momentum)*running + Momentum*batch, with the
// unbiased batch variance (n = N*H*W, divided by n-1) as PyTorch does. They may be
// replaced (e.g. by checkpoint slices) at any time between runs, keeping length C.
//
// Momentum and Eps are read when the graph is built. Their zero values mean PyTorch's
// defaults, 0.1 and 1e-5, so a literal BatchNormState works; a momentum of exactly 0
// (frozen running statistics) is expressed by building the graph in evaluation mode.
type BatchNormState struct {
	Name        string    // layer id: part of the op hash and of error messages
	RunningMean []float32 // len C
	RunningVar  []float32 // len C
	Momentum    float64   // in (0, 1]; 0 means 0.1
	Eps         float64   // > 0; 0 means 1e-5

	// Sync, when set, makes training-mode runs normalise with the statistics of the
	// whole batch across the ranks of a data-parallel run (PyTorch's SyncBatchNorm): the
	// forward pass sums per-channel counts, sums and squared deviations over the ranks,
	// the backward pass the per-channel sums of dy and dy·x̂. The gamma and beta gradients
	// stay local (the trainer averages every gradient over the ranks). Every rank must run
	// the same layers in the same order. Read at every run.
	Sync StatReducer
}

// StatReducer sums float64 buffers over the ranks of a data-parallel run, in place, on
// every rank (distributed.Comm is one).
type StatReducer interface {
	AllreduceF64(buf []float64) error
}

// NewBatchNormState returns the state of a fresh layer with c channels: running mean 0,
// running variance 1, momentum 0.1, eps 1e-5.
func NewBatchNormState(name string, c int) *BatchNormState {
	st := &BatchNormState{Name: name, RunningMean: make([]float32, c), RunningVar: make([]float32, c), Momentum: 0.1, Eps: 1e-5}
	for i := range st.RunningVar {
		st.RunningVar[i] = 1
	}
	return st
}

// BatchNorm2D normalises x (N, C, H, W) per channel and applies the affine map gamma·x̂ +
// beta, gamma and beta being (C) parameter nodes (PyTorch's weight and bias).
//
// In training mode it normalises with the batch mean and biased variance over N, H, W and
// updates st's running statistics; it needs N*H*W > 1. In evaluation mode it normalises
// with st's running statistics. The gradients with respect to x, gamma and beta are exact
// in both modes (in evaluation mode the layer is an affine map of x).
func BatchNorm2D(x, gamma, beta *G.Node, st *BatchNormState, training bool) (*G.Node, error) {
	return batchNorm2D(x, gamma, beta, st, training, false)
}

// BatchNormReLU2D is BatchNorm2D followed by a ReLU, in one op: max(gamma·x̂ + beta, 0).
// The gradients pass the output gradient only where the output is positive, as ReLU's
// do. It saves the separate ReLU's output buffer and two passes over the activations.
func BatchNormReLU2D(x, gamma, beta *G.Node, st *BatchNormState, training bool) (*G.Node, error) {
	return batchNorm2D(x, gamma, beta, st, training, true)
}

func batchNorm2D(x, gamma, beta *G.Node, st *BatchNormState, training, relu bool) (*G.Node, error) {
	if err := checkF32Node("batchnorm2d", "x", x, 4); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("ops: batchnorm2d: nil *BatchNormState")
	}
	s := x.Shape()
	c := s[1]
	for _, p := range []struct {
		what string
		n    *G.Node
	}{{"gamma", gamma}, {"beta", beta}} {
		if err := checkF32Node("batchnorm2d "+st.Name, p.what, p.n, -1); err != nil {
			return nil, err
		}
		if ps := p.n.Shape(); p.n.Dims() != 1 || ps.TotalSize() != c {
			return nil, fmt.Errorf("ops: batchnorm2d %s: %s %s has shape %v, want (%d) for x of shape %v", st.Name, p.what, p.n.Name(), ps, c, s)
		}
	}
	if len(st.RunningMean) != c || len(st.RunningVar) != c {
		return nil, fmt.Errorf("ops: batchnorm2d %s: running mean/var have lengths %d/%d, want %d for x of shape %v", st.Name, len(st.RunningMean), len(st.RunningVar), c, s)
	}
	momentum, eps := st.Momentum, st.Eps
	if momentum == 0 {
		momentum = 0.1
	}
	if eps == 0 {
		eps = 1e-5
	}
	if !(momentum > 0 && momentum <= 1) {
		return nil, fmt.Errorf("ops: batchnorm2d %s: momentum %v, want 0 < momentum <= 1", st.Name, momentum)
	}
	if !(eps > 0) {
		return nil, fmt.Errorf("ops: batchnorm2d %s: eps %v, want > 0", st.Name, eps)
	}
	if training && s[0]*s[2]*s[3] < 2 {
		return nil, fmt.Errorf("ops: batchnorm2d %s: x has shape %v: training needs more than one value per channel", st.Name, s)
	}
	op := &bnOp{st: st, training: training, relu: relu, momentum: momentum, eps: eps, shape: s}
	y, err := G.ApplyOp(op, x, gamma, beta)
	if err != nil {
		return nil, fmt.Errorf("ops: batchnorm2d %s: %w", st.Name, err)
	}
	return y, nil
}

// bnOp is the forward op; it also owns what its gradient ops share: the statistics the
// last run normalised with and the gamma/beta gradients of the last backward run.
type bnOp struct {
	opHooks
	st            *BatchNormState
	training      bool
	relu          bool // fused ReLU
	momentum, eps float64
	shape         tensor.Shape // x: (N, C, H, W)
	buf           ownedBuf

	mean, invstd   []float64 // len C, from the last forward run
	planeA, planeB []float64 // len N*C scratch: per-plane reductions
	scale, shift   []float32 // len C scratch: y = x*scale + shift
	dgamma, dbeta  []float32 // len C, from the last backward run
	count          float64   // values per channel the last run normalised over (all ranks)
	statBuf        []float64 // len C+1 scratch for the per-channel statistics
}

func (op *bnOp) Arity() int { return 3 }
func (op *bnOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(4), anyTensor(1), anyTensor(1), anyTensor(4))
}
func (op *bnOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *bnOp) ReturnsPtr() bool                               { return false }
func (op *bnOp) CallsExtern() bool                              { return false }
func (op *bnOp) OverwritesInput() int                           { return -1 }

// WriteHash covers every setting, the layer name and the state's identity, so two batch
// norms on the same input never merge unless they share their state.
func (op *bnOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s@%p", op.String(), op.st) }
func (op *bnOp) Hashcode() uint32      { return hashOp(op) }
func (op *bnOp) String() string {
	return fmt.Sprintf("BatchNorm2D{%q,train=%v,relu=%v,momentum=%v,eps=%v}%v", op.st.Name, op.training, op.relu, op.momentum, op.eps, op.shape)
}

func (op *bnOp) dims() (n, c, hw int) { return op.shape[0], op.shape[1], op.shape[2] * op.shape[3] }

func (op *bnOp) alloc() {
	n, c, _ := op.dims()
	if op.mean == nil {
		op.mean, op.invstd = make([]float64, c), make([]float64, c)
		op.planeA, op.planeB = make([]float64, n*c), make([]float64, n*c)
		op.scale, op.shift = make([]float32, c), make([]float32, c)
		op.dgamma, op.dbeta = make([]float32, c), make([]float32, c)
	}
}

func (op *bnOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindBatchNorm, op.start(), inputs)
	name := "batchnorm2d " + op.st.Name
	if err := checkArity(name, inputs, 3); err != nil {
		return nil, err
	}
	n, c, hw := op.dims()
	x, err := f32Value(inputs[0], name, "x", op.shape)
	if err != nil {
		return nil, err
	}
	gamma, err := f32Value(inputs[1], name, "gamma", tensor.Shape{c})
	if err != nil {
		return nil, err
	}
	beta, err := f32Value(inputs[2], name, "beta", tensor.Shape{c})
	if err != nil {
		return nil, err
	}
	rm, rv := op.st.RunningMean, op.st.RunningVar
	if len(rm) != c || len(rv) != c {
		return nil, fmt.Errorf("ops: %s: running mean/var have lengths %d/%d, want %d", name, len(rm), len(rv), c)
	}
	op.alloc()

	floor := float32(math.Inf(-1))
	if op.relu {
		floor = 0
	}
	if op.training && op.st.Sync == nil {
		// Channel by channel: its N planes' statistics, then their normalisation while
		// they are still in cache (one pass over x from memory instead of two).
		t, y := op.buf.get(&op.opHooks, op.shape)
		parallelChannels(n, c, hw, func(c0, c1 int) {
			for ch := c0; ch < c1; ch++ {
				for i := range n {
					op.planeStats(x, i*c+ch, hw)
				}
				op.channelStats(ch)
				a := float64(gamma[ch]) * op.invstd[ch]
				op.scale[ch], op.shift[ch] = float32(a), float32(float64(beta[ch])-op.mean[ch]*a)
				for i := range n {
					p := i*c + ch
					affine(y[p*hw:(p+1)*hw], x[p*hw:(p+1)*hw], op.scale[ch], op.shift[ch], floor)
				}
			}
		})
		op.count = float64(n * hw)
		return t, nil
	}
	if op.training {
		// Per plane: its mean and sum of squared deviations (two passes over a plane
		// that stays in cache), then Chan et al.'s combination per channel.
		parallelPlanes(n*c, hw, func(lo, hi int) {
			for p := lo; p < hi; p++ {
				op.planeStats(x, p, hw)
			}
		})
		if err := op.batchStats(); err != nil {
			return nil, fmt.Errorf("ops: %s: %w", name, err)
		}
	} else {
		for ch := range c {
			op.mean[ch], op.invstd[ch] = float64(rm[ch]), 1/math.Sqrt(float64(rv[ch])+op.eps)
		}
	}
	for ch := range c {
		a := float64(gamma[ch]) * op.invstd[ch]
		op.scale[ch], op.shift[ch] = float32(a), float32(float64(beta[ch])-op.mean[ch]*a)
	}

	t, y := op.buf.get(&op.opHooks, op.shape)
	parallelPlanes(n*c, hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			affine(y[p*hw:(p+1)*hw], x[p*hw:(p+1)*hw], op.scale[p%c], op.shift[p%c], floor)
		}
	})
	return t, nil
}

// batchStats sets mean, invstd, count and the running statistics from the per-plane
// means and squared deviations (Chan et al.'s combination) under Sync: the per-channel
// sums of plane means and the plane count are summed over the ranks first, then the
// squared deviations about the global mean: two allreduces, and no Σx²-n·mean²
// cancellation. Without Sync, channelStats does the same arithmetic per channel.
func (op *bnOp) batchStats() error {
	n, c, hw := op.dims()
	if op.statBuf == nil {
		op.statBuf = make([]float64, c+1)
	}
	reduce := func(buf []float64) error {
		if err := op.st.Sync.AllreduceF64(buf); err != nil {
			return fmt.Errorf("synchronise batch statistics: %w", err)
		}
		return nil
	}
	buf := op.statBuf
	for ch := range c {
		buf[ch] = op.sumPlaneMeans(ch)
	}
	buf[c] = float64(n)
	if err := reduce(buf); err != nil {
		return err
	}
	planes := buf[c] // every plane has hw values, on every rank
	for ch := range c {
		op.mean[ch] = buf[ch] / planes
	}
	for ch := range c {
		buf[ch] = op.sumSqDevs(ch, op.mean[ch])
	}
	if err := reduce(buf[:c]); err != nil {
		return err
	}
	op.count = planes * float64(hw)
	for ch := range c {
		op.setChannel(ch, op.mean[ch], buf[ch], op.count)
	}
	return nil
}

// planeStats sets plane p's mean and sum of squared deviations (two passes over a plane
// that stays in cache).
func (op *bnOp) planeStats(x []float32, p, hw int) {
	xp := x[p*hw : (p+1)*hw]
	pm := sum64(xp) / float64(hw)
	op.planeA[p], op.planeB[p] = pm, sumSqDev64(xp, pm)
}

// sumPlaneMeans is the sum of channel ch's plane means, in image order.
func (op *bnOp) sumPlaneMeans(ch int) float64 {
	n, c, _ := op.dims()
	var s float64
	for i := range n {
		s += op.planeA[i*c+ch]
	}
	return s
}

// sumSqDevs is channel ch's sum of squared deviations about mean, from its planes'.
func (op *bnOp) sumSqDevs(ch int, mean float64) float64 {
	n, c, hw := op.dims()
	var m2 float64
	for i := range n {
		d := op.planeA[i*c+ch] - mean
		m2 += op.planeB[i*c+ch] + float64(hw)*d*d
	}
	return m2
}

// setChannel sets channel ch's mean, invstd and running statistics from its mean and
// sum of squared deviations m2 over cnt values.
func (op *bnOp) setChannel(ch int, mean, m2, cnt float64) {
	op.mean[ch] = mean
	v := m2 / cnt
	op.invstd[ch] = 1 / math.Sqrt(v+op.eps)
	rm, rv, m := op.st.RunningMean, op.st.RunningVar, op.momentum
	rm[ch] = float32((1-m)*float64(rm[ch]) + m*mean)
	rv[ch] = float32((1-m)*float64(rv[ch]) + m*v*cnt/(cnt-1))
}

// channelStats sets channel ch's statistics from its planes' without Sync: the
// arithmetic of batchStats for one channel, so that both paths give the same bits.
func (op *bnOp) channelStats(ch int) {
	n, _, hw := op.dims()
	mean := op.sumPlaneMeans(ch) / float64(n)
	op.setChannel(ch, mean, op.sumSqDevs(ch, mean), float64(n)*float64(hw))
}

// parallelChannels runs body over channels [0, c) of N×C planes of hw elements, in
// parallel when there is enough work.
func parallelChannels(n, c, hw int, body func(c0, c1 int)) {
	if n*c*hw <= 1<<14 {
		body(0, c)
		return
	}
	parallelFor(c, body)
}

func (op *bnOp) DiffWRT(int) []bool { return []bool{true, true, true} }

func (op *bnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("ops: batchnorm2d %s: got %d inputs, want 3", op.st.Name, len(inputs))
	}
	// dx's op computes all three gradients in one pass; the gamma and beta gradients are
	// read from op by two small ops that depend on dx. output is an input of the dx op
	// only to order it after the forward pass, whose statistics it reads.
	dx, err := G.ApplyOp(&bnDiffOp{fwd: op}, inputs[0], inputs[1], output, grad)
	if err != nil {
		return nil, fmt.Errorf("ops: batchnorm2d %s: gradient: %w", op.st.Name, err)
	}
	dgamma, err := G.ApplyOp(&bnParamGradOp{fwd: op, beta: false}, dx)
	if err != nil {
		return nil, fmt.Errorf("ops: batchnorm2d %s: gamma gradient: %w", op.st.Name, err)
	}
	dbeta, err := G.ApplyOp(&bnParamGradOp{fwd: op, beta: true}, dx)
	if err != nil {
		return nil, fmt.Errorf("ops: batchnorm2d %s: beta gradient: %w", op.st.Name, err)
	}
	return G.Nodes{dx, dgamma, dbeta}, nil
}

// bnDiffOp computes dx and stashes dgamma, dbeta in its forward op.
// Inputs: x, gamma, y (ordering only: the fused ReLU's mask is recomputed from x), dy.
//
//	dbeta  = Σ dy,  dgamma = Σ dy·x̂,  x̂ = (x-mean)·invstd (sums over N, H, W)
//	training: dx = gamma·invstd·(dy - dbeta/n - x̂·dgamma/n)
//	eval:     dx = gamma·invstd·dy
type bnDiffOp struct {
	opHooks
	fwd        *bnOp
	buf        ownedBuf
	k1, k2, k3 []float32 // len C: dx = k1*dy + k2*(x-mean) + k3
	sums       []float64 // len 2C scratch: Σdy, Σdy·(x-mean) per channel
	mean32     []float32
}

func (op *bnDiffOp) Arity() int { return 4 }
func (op *bnDiffOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(4), anyTensor(1), anyTensor(4), anyTensor(4), anyTensor(4))
}
func (op *bnDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.fwd.shape.Clone(), nil }
func (op *bnDiffOp) ReturnsPtr() bool                               { return false }
func (op *bnDiffOp) CallsExtern() bool                              { return false }
func (op *bnDiffOp) OverwritesInput() int                           { return -1 }
func (op *bnDiffOp) WriteHash(h hash.Hash) {
	fmt.Fprint(h, "Diff")
	op.fwd.WriteHash(h)
}
func (op *bnDiffOp) Hashcode() uint32 { return hashOp(op) }
func (op *bnDiffOp) String() string   { return "Diff" + op.fwd.String() }

func (op *bnDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindBatchNorm, op.start(), inputs)
	f := op.fwd
	name := "batchnorm2d " + f.st.Name + " gradient"
	if err := checkArity(name, inputs, 4); err != nil {
		return nil, err
	}
	n, c, hw := f.dims()
	x, err := f32Value(inputs[0], name, "x", f.shape)
	if err != nil {
		return nil, err
	}
	gamma, err := f32Value(inputs[1], name, "gamma", tensor.Shape{c})
	if err != nil {
		return nil, err
	}
	dy, err := f32Value(inputs[3], name, "dy", f.shape)
	if err != nil {
		return nil, err
	}
	// The fused ReLU's mask is recomputed from x (reluOf), not read from y: one pass
	// over memory fewer.
	mask := f.relu
	if f.mean == nil {
		return nil, fmt.Errorf("ops: %s: the forward pass has not run", name)
	}
	if op.k1 == nil {
		op.k1, op.k2, op.k3, op.mean32 = make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
	}

	t, dx := op.buf.get(&op.opHooks, f.shape)
	if !f.training || f.st.Sync == nil {
		// Channel by channel: the sums over its N planes, then dx while they are still
		// in cache (dy, x and y read once from memory instead of twice).
		cnt := float64(n * hw)
		parallelChannels(n, c, hw, func(c0, c1 int) {
			for ch := c0; ch < c1; ch++ {
				for i := range n {
					op.planeSums(i*c+ch, ch, dy, x, mask, hw)
				}
				sdy, sdyx := op.channelSums(ch)
				op.coefficients(ch, sdy, sdyx, cnt, gamma[ch])
				for i := range n {
					p := i*c + ch
					op.backPlane(p, ch, dx, dy, x, mask, hw)
				}
			}
		})
		return t, nil
	}
	// Under Sync: per-plane Σdy and Σdy·(x-mean), then per channel over the ranks.
	parallelPlanes(n*c, hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			op.planeSums(p, p%c, dy, x, mask, hw)
		}
	})
	cnt := float64(n * hw)
	// sums: per channel Σdy, then Σdy·(x-mean); the gamma and beta gradients are this
	// rank's, dx uses every rank's under Sync.
	if op.sums == nil {
		op.sums = make([]float64, 2*c)
	}
	sums := op.sums
	for ch := range c {
		sums[ch], sums[c+ch] = op.channelSums(ch)
	}
	if f.training && f.st.Sync != nil {
		if err := f.st.Sync.AllreduceF64(sums); err != nil {
			return nil, fmt.Errorf("ops: %s: synchronise gradient sums: %w", name, err)
		}
		cnt = f.count
	}
	for ch := range c {
		op.coefficients(ch, sums[ch], sums[c+ch], cnt, gamma[ch])
	}
	parallelPlanes(n*c, hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			op.backPlane(p, p%c, dx, dy, x, mask, hw)
		}
	})
	return t, nil
}

// planeSums sets plane p's (channel ch) Σdy' and Σdy'·(x-mean), dy' masked by the fused
// ReLU when mask.
func (op *bnDiffOp) planeSums(p, ch int, dy, x []float32, mask bool, hw int) {
	f := op.fwd
	xp := x[p*hw : (p+1)*hw]
	f.planeA[p], f.planeB[p] = sumDyDev64(dy[p*hw:(p+1)*hw], xp, op.relu(xp, ch, mask), f.mean[ch])
}

// relu is the fused ReLU's mask over xp, a plane of channel ch of x, when mask: the
// forward pass's affine map of that plane (same scale, shift and plane bounds), so the
// same positions pass as where its output is not 0.
func (op *bnDiffOp) relu(xp []float32, ch int, mask bool) reluOf {
	if !mask {
		return reluOf{}
	}
	return reluOf{x: xp, a: op.fwd.scale[ch], b: op.fwd.shift[ch]}
}

// channelSums returns channel ch's Σdy' and Σdy'·(x-mean) over its planes, in image
// order, and stashes this rank's gamma and beta gradients from them.
func (op *bnDiffOp) channelSums(ch int) (sdy, sdyx float64) {
	f := op.fwd
	n, c, _ := f.dims()
	for i := range n {
		sdy += f.planeA[i*c+ch]
		sdyx += f.planeB[i*c+ch]
	}
	f.dbeta[ch], f.dgamma[ch] = float32(sdy), float32(sdyx*f.invstd[ch])
	return sdy, sdyx
}

// coefficients sets channel ch's k1, k2, k3 (dx = k1*dy' + k2*(x-mean) + k3) from Σdy
// and Σdy·(x-mean) over cnt values.
func (op *bnDiffOp) coefficients(ch int, sdy, sdyx, cnt float64, gamma float32) {
	f := op.fwd
	is := f.invstd[ch]
	dbeta, dgamma := sdy, sdyx*is
	a := float64(gamma) * is
	op.k1[ch], op.mean32[ch] = float32(a), float32(f.mean[ch])
	if f.training {
		op.k2[ch] = float32(-a * is * dgamma / cnt)
		op.k3[ch] = float32(-a * dbeta / cnt)
	}
}

// backPlane computes dx for plane p (channel ch).
func (op *bnDiffOp) backPlane(p, ch int, dx, dy, x []float32, mask bool, hw int) {
	dxp, dyp, xp := dx[p*hw:(p+1)*hw], dy[p*hw:(p+1)*hw], x[p*hw:(p+1)*hw]
	r := op.relu(xp, ch, mask)
	if !op.fwd.training {
		bnBack(dxp, dyp, dyp, r, op.k1[ch], 0, 0, 0) // dx = k1·dy'
		return
	}
	bnBack(dxp, dyp, xp, r, op.k1[ch], op.k2[ch], op.k3[ch], op.mean32[ch])
}

// bnParamGradOp returns the gamma (or beta) gradient that the bnDiffOp it reads (its
// input, for ordering) stashed in the forward op.
type bnParamGradOp struct {
	opHooks
	fwd  *bnOp
	beta bool
	buf  ownedBuf
}

func (op *bnParamGradOp) Arity() int    { return 1 }
func (op *bnParamGradOp) Type() hm.Type { return hm.NewFnType(anyTensor(4), anyTensor(1)) }
func (op *bnParamGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.fwd.shape[1]}, nil
}
func (op *bnParamGradOp) ReturnsPtr() bool     { return false }
func (op *bnParamGradOp) CallsExtern() bool    { return false }
func (op *bnParamGradOp) OverwritesInput() int { return -1 }
func (op *bnParamGradOp) WriteHash(h hash.Hash) {
	fmt.Fprint(h, op.which())
	op.fwd.WriteHash(h)
}
func (op *bnParamGradOp) Hashcode() uint32 { return hashOp(op) }
func (op *bnParamGradOp) String() string   { return op.which() + op.fwd.String() }

func (op *bnParamGradOp) which() string {
	if op.beta {
		return "DBeta"
	}
	return "DGamma"
}

func (op *bnParamGradOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindBatchNorm, op.start(), inputs)
	if err := checkArity("batchnorm2d "+op.fwd.st.Name+" "+op.which(), inputs, 1); err != nil {
		return nil, err
	}
	src := op.fwd.dgamma
	if op.beta {
		src = op.fwd.dbeta
	}
	c := op.fwd.shape[1]
	if len(src) != c {
		return nil, fmt.Errorf("ops: batchnorm2d %s: %s: the gradient pass has not run", op.fwd.st.Name, op.which())
	}
	t, d := op.buf.get(&op.opHooks, tensor.Shape{c})
	copy(d, src)
	return t, nil
}
