package train

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
)

// The hand-computed cases share one problem: a weight w = [1, -2] and a bias b = [0.5]
// (written together as p = [1, -2, 0.5]), and three fixed gradients
//
//	g1 = [0.5, 1, -2], g2 = [1, 0, 0.25], g3 = [-1, 2, 4].
var handGrads = [3][3]float32{{0.5, 1, -2}, {1, 0, 0.25}, {-1, 2, 4}}

// runHand applies three steps of opt at lr and returns p after each step.
func runHand(t *testing.T, opt Optimizer, lr float64, biasNoDecay bool) [3][3]float32 {
	t.Helper()
	w, b := []float32{1, -2}, []float32{0.5}
	params := []Param{
		{Name: "w", Data: w, Grad: make([]float32, 2)},
		{Name: "b", Data: b, Grad: make([]float32, 1), NoDecay: biasNoDecay},
	}
	var out [3][3]float32
	for s, g := range handGrads {
		copy(params[0].Grad, g[:2])
		params[1].Grad[0] = g[2]
		if err := opt.Step(params, lr); err != nil {
			t.Fatal(err)
		}
		out[s] = [3]float32{w[0], w[1], b[0]}
	}
	return out
}

func TestSGDHand(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    SGDConfig
		nodec  bool
		want   [3][3]float32
		reason string
	}{
		{
			name: "plain", cfg: SGDConfig{},
			// p -= 0.5·g:
			// 1: [1-0.25, -2-0.5, 0.5+1] = [0.75, -2.5, 1.5]
			// 2: [0.75-0.5, -2.5-0, 1.5-0.125] = [0.25, -2.5, 1.375]
			// 3: [0.25+0.5, -2.5-1, 1.375-2] = [0.75, -3.5, -0.625]
			want: [3][3]float32{{0.75, -2.5, 1.5}, {0.25, -2.5, 1.375}, {0.75, -3.5, -0.625}},
		},
		{
			name: "momentum 0.5, weight decay 0.25", cfg: SGDConfig{Momentum: 0.5, WeightDecay: 0.25},
			// 1: g = g1 + 0.25·p = [0.75, 0.5, -1.875]; buf = g;
			//    p -= 0.5·buf → [0.625, -2.25, 1.4375]
			// 2: g = g2 + 0.25·p = [1.15625, -0.5625, 0.609375];
			//    buf = 0.5·buf + g = [1.53125, -0.3125, -0.328125];
			//    p -= 0.5·buf → [-0.140625, -2.09375, 1.6015625]
			// 3: g = g3 + 0.25·p = [-1.03515625, 1.4765625, 4.400390625];
			//    buf = 0.5·buf + g = [-0.26953125, 1.3203125, 4.236328125];
			//    p -= 0.5·buf → [-0.005859375, -2.75390625, -0.5166015625]
			want: [3][3]float32{{0.625, -2.25, 1.4375}, {-0.140625, -2.09375, 1.6015625}, {-0.005859375, -2.75390625, -0.5166015625}},
		},
		{
			name: "nesterov", cfg: SGDConfig{Momentum: 0.5, Nesterov: true},
			// 1: buf = g1; g = g1 + 0.5·buf = [0.75, 1.5, -3]; p -= 0.5·g → [0.625, -2.75, 2]
			// 2: buf = 0.5·buf + g2 = [1.25, 0.5, -0.75]; g = g2 + 0.5·buf = [1.625, 0.25, -0.125];
			//    p -= 0.5·g → [-0.1875, -2.875, 2.0625]
			// 3: buf = 0.5·buf + g3 = [-0.375, 2.25, 3.625]; g = g3 + 0.5·buf = [-1.1875, 3.125, 5.8125];
			//    p -= 0.5·g → [0.40625, -4.4375, -0.84375]
			want: [3][3]float32{{0.625, -2.75, 2}, {-0.1875, -2.875, 2.0625}, {0.40625, -4.4375, -0.84375}},
		},
		{
			name: "dampening 0.5", cfg: SGDConfig{Momentum: 0.5, Dampening: 0.5},
			// 1: buf = g1 (no dampening on the first step); p -= 0.5·buf → [0.75, -2.5, 1.5]
			// 2: buf = 0.5·buf + 0.5·g2 = [0.75, 0.5, -0.875]; p -= 0.5·buf → [0.375, -2.75, 1.9375]
			// 3: buf = 0.5·buf + 0.5·g3 = [-0.125, 1.25, 1.5625]; p -= 0.5·buf → [0.4375, -3.375, 1.15625]
			want: [3][3]float32{{0.75, -2.5, 1.5}, {0.375, -2.75, 1.9375}, {0.4375, -3.375, 1.15625}},
		},
		{
			name: "weight decay 0.25, bias exempt", cfg: SGDConfig{WeightDecay: 0.25}, nodec: true,
			// w: g = g + 0.25·w; b: g as is. p -= 0.5·g:
			// 1: g = [0.75, 0.5, -2] → [0.625, -2.25, 1.5]
			// 2: g = [1.15625, -0.5625, 0.25] → [0.046875, -1.96875, 1.375]
			// 3: g = [-0.98828125, 1.5078125, 4] → [0.541015625, -2.72265625, -0.625]
			want: [3][3]float32{{0.625, -2.25, 1.5}, {0.046875, -1.96875, 1.375}, {0.541015625, -2.72265625, -0.625}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			opt, err := NewSGD(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Every number above is a short binary fraction: float32 holds it exactly.
			if got := runHand(t, opt, 0.5, c.nodec); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestAdamHand(t *testing.T) {
	// lr 0.1, betas (0.9, 0.999), eps 0.01 (large, so that its place in the formula
	// shows).
	//
	// Step 1, any g: m = 0.1·g, v = 0.001·g², bc1 = 0.1, bc2 = 0.001, so
	// denom = |g| + 0.01 and p -= 0.1·g/(|g| + 0.01):
	//   [1 - 0.05/0.51, -2 - 0.1/1.01, 0.5 + 0.2/2.01] = [0.90196078, -2.0990099, 0.59950249]
	// Step 2, bc1 = 1-0.81 = 0.19, bc2 = 1-0.998001 = 0.001999:
	//   m = 0.9·m + 0.1·g2 = [0.145, 0.09, -0.155]
	//   v = 0.999·v + 0.001·g2² = [0.00124975, 0.000999, 0.0040585]
	//   denom = sqrt(v)/sqrt(0.001999) + 0.01 = [0.80068803, 0.71692854, 1.4348742]
	//   p -= (0.1/0.19)·m/denom = [0.09531276, 0.06607881, -0.05685556]
	//   → [0.80664802, -2.1650811, 0.65635693]
	// Step 3, bc1 = 0.271, bc2 = 0.002997003:
	//   m = [0.0305, 0.281, 0.2605], v = [0.0022485, 0.004998, 0.0200544]
	//   → [0.79380278, -2.244758, 0.61933996]
	//
	// With weight decay 0.5: Adam adds 0.5·p to the gradient before the moments
	// (step 1 for w[0]: g = 0.5 + 0.5·1 = 1, p = 1 - 0.1·1/1.01 = 0.9009901); AdamW
	// first scales p by 1 - 0.1·0.5 = 0.95 and leaves the gradient alone (step 1 for
	// w[0]: 0.95 - 0.05/0.51 = 0.85196078). The exempt bias follows plain Adam.
	adam := [3][3]float32{{0.901960784, -2.0990099, 0.599502488}, {0.806648023, -2.1650811, 0.656356931}, {0.793802781, -2.24475797, 0.619339955}}
	for _, c := range []struct {
		name  string
		w     bool
		cfg   AdamConfig
		nodec bool
		want  [3][3]float32 // the formula in float64, rounded
		exact [3][3]float32 // the same in float32, one rounding per operation
	}{
		{name: "adam", cfg: AdamConfig{0.9, 0.999, 0.01, 0}, want: adam,
			exact: [3][3]float32{{0.90196079, -2.09900999, 0.599502444}, {0.806648016, -2.16508126, 0.656356871}, {0.793802798, -2.24475813, 0.619339883}}},
		{name: "adam l2", cfg: AdamConfig{0.9, 0.999, 0.01, 0.5},
			want:  [3][3]float32{{0.900990099, -2, 0.599431818}, {0.802486106, -1.92662375, 0.640725748}, {0.750866778, -1.93261531, 0.59464685}},
			exact: [3][3]float32{{0.900990129, -2, 0.599431813}, {0.802486122, -1.9266237, 0.640725732}, {0.750866771, -1.93261528, 0.594646811}}},
		{name: "adam l2, bias exempt", cfg: AdamConfig{0.9, 0.999, 0.01, 0.5}, nodec: true,
			want: [3][3]float32{{0.900990099, -2, adam[0][2]}, {0.802486106, -1.92662375, adam[1][2]}, {0.750866778, -1.93261531, adam[2][2]}}},
		{name: "adamw", w: true, cfg: AdamConfig{0.9, 0.999, 0.01, 0.5},
			want:  [3][3]float32{{0.851960784, -1.9990099, 0.574502488}, {0.714049983, -1.96513061, 0.602631807}, {0.665502242, -1.94655094, 0.53548324}},
			exact: [3][3]float32{{0.851960778, -1.99900985, 0.574502468}, {0.714049935, -1.96513057, 0.602631748}, {0.665502191, -1.94655085, 0.535483181}}},
		{name: "adamw, bias exempt", w: true, cfg: AdamConfig{0.9, 0.999, 0.01, 0.5}, nodec: true,
			want: [3][3]float32{{0.851960784, -1.9990099, adam[0][2]}, {0.714049983, -1.96513061, adam[1][2]}, {0.665502242, -1.94655094, adam[2][2]}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			newOpt := NewAdam
			if c.w {
				newOpt = NewAdamW
			}
			opt, err := newOpt(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := runHand(t, opt, 0.1, c.nodec)
			for s := range 3 {
				for j := range 3 {
					if d := math.Abs(float64(got[s][j] - c.want[s][j])); d > 1e-6 {
						t.Errorf("step %d p[%d]: got %.9g, want %.9g", s+1, j, got[s][j], c.want[s][j])
					}
				}
			}
			if c.exact != ([3][3]float32{}) && got != c.exact {
				t.Errorf("float32 rounding: got %v, want exactly %v", got, c.exact)
			}
		})
	}
}

// problem is a deterministic training problem: params with gradients that depend on
// the parameters and the step, so that any divergence propagates.
type problem struct {
	params []Param
}

func newProblem(sizes ...int) *problem {
	r := rand.New(rand.NewPCG(1, 2))
	pr := &problem{}
	for i, n := range sizes {
		p := Param{Name: "layer" + string(rune('a'+i)), Data: make([]float32, n), Grad: make([]float32, n), NoDecay: i%2 == 1}
		for j := range p.Data {
			p.Data[j] = float32(r.NormFloat64())
		}
		pr.params = append(pr.params, p)
	}
	return pr
}

func (pr *problem) grads(step int) {
	for i := range pr.params {
		p := &pr.params[i]
		for j, x := range p.Data {
			p.Grad[j] = x*x*0.5 - float32(math.Sin(float64(j+step)))
		}
	}
}

func (pr *problem) run(t *testing.T, opt Optimizer, sched Schedule, from, to int) {
	t.Helper()
	for s := from; s < to; s++ {
		pr.grads(s)
		if err := opt.Step(pr.params, sched.LR(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResumeExact runs 6 steps straight, and 3 steps, a checkpoint round trip of
// weights and optimizer state through a safetensors file, a fresh optimizer, then 3
// more: the weights must agree bit for bit. The big layer takes the parallel path.
func TestResumeExact(t *testing.T) {
	sched := Schedule{Kind: "cosine", BaseLR: 0.05, TotalSteps: 8, WarmupSteps: 2}
	for _, cfg := range []OptimizerConfig{
		{Kind: "sgd", Momentum: 0.9, WeightDecay: 1e-3},
		{Kind: "sgd", Momentum: 0.9, Nesterov: true},
		{Kind: "sgd"},
		{Kind: "adam", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-3},
		{Kind: "adamw", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01},
	} {
		name := cfg.Kind
		if cfg.Nesterov {
			name += "-nesterov"
		}
		t.Run(name, func(t *testing.T) {
			sizes := []int{70000, 3, 17}
			straight := newProblem(sizes...)
			opt, err := NewOptimizer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			straight.run(t, opt, sched, 0, 6)

			first := newProblem(sizes...)
			opt1, _ := NewOptimizer(cfg)
			first.run(t, opt1, sched, 0, 3)
			path := filepath.Join(t.TempDir(), "last.safetensors")
			saveCheckpoint(t, path, first.params, opt1.State())

			resumed := newProblem(sizes...)
			opt2, _ := NewOptimizer(cfg)
			loadCheckpoint(t, path, resumed.params, opt2)
			resumed.run(t, opt2, sched, 3, 6)

			for i := range straight.params {
				a, b := straight.params[i].Data, resumed.params[i].Data
				for j := range a {
					if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
						t.Fatalf("%s[%d]: straight %v, resumed %v", straight.params[i].Name, j, a[j], b[j])
					}
				}
			}
		})
	}
}

func saveCheckpoint(t *testing.T, path string, params []Param, st State) {
	t.Helper()
	f := &checkpoints.File{Metadata: st.Metadata()}
	for _, p := range params {
		f.Tensors = append(f.Tensors, checkpoints.Tensor{Name: p.Name, Shape: []int{len(p.Data)}, Data: p.Data})
	}
	for _, k := range st.Keys() {
		f.Tensors = append(f.Tensors, checkpoints.Tensor{Name: k, Shape: []int{len(st.Tensors[k])}, Data: st.Tensors[k]})
	}
	if err := checkpoints.Save(path, f); err != nil {
		t.Fatal(err)
	}
}

func loadCheckpoint(t *testing.T, path string, params []Param, opt Optimizer) {
	t.Helper()
	f, err := checkpoints.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]float32{}
	for _, tn := range f.Tensors {
		byName[tn.Name] = tn.Data
	}
	for _, p := range params {
		copy(p.Data, byName[p.Name])
	}
	st, err := RestoreState(f.Metadata, byName)
	if err != nil {
		t.Fatal(err)
	}
	if err := opt.SetState(st, params); err != nil {
		t.Fatal(err)
	}
}

func TestStateKeysAndStep(t *testing.T) {
	pr := newProblem(4, 2)
	opt, _ := NewAdamW(AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if st := opt.State(); st.Step != 0 || len(st.Tensors) != 0 || st.Optimizer != "adamw" {
		t.Errorf("fresh state: got %+v", st)
	}
	pr.run(t, opt, Schedule{BaseLR: 0.1}, 0, 2)
	st := opt.State()
	want := []string{"optim.exp_avg.layera", "optim.exp_avg.layerb", "optim.exp_avg_sq.layera", "optim.exp_avg_sq.layerb"}
	if got := st.Keys(); strings.Join(got, " ") != strings.Join(want, " ") || st.Step != 2 {
		t.Errorf("got keys %v step %d, want %v step 2", got, st.Step, want)
	}
	md := st.Metadata()
	if md[MetaOptimizer] != "adamw" || md[MetaOptimStep] != "2" {
		t.Errorf("metadata %v", md)
	}
	// A step count past 2^53 survives the metadata round trip exactly.
	big := State{Optimizer: "sgd", Step: 1<<60 + 1}
	back, err := RestoreState(big.Metadata(), map[string][]float32{"features.0.weight": nil})
	if err != nil || back.Step != big.Step || len(back.Tensors) != 0 {
		t.Errorf("RestoreState: got %+v, %v", back, err)
	}
	for _, md := range []map[string]string{{}, {MetaOptimizer: "sgd", MetaOptimStep: "x"}, {MetaOptimizer: "sgd", MetaOptimStep: "-1"}} {
		if _, err := RestoreState(md, nil); err == nil || !strings.HasPrefix(err.Error(), "train: ") {
			t.Errorf("RestoreState(%v): got %v", md, err)
		}
	}
}

func TestSetStateErrors(t *testing.T) {
	pr := newProblem(4, 2)
	adam, _ := NewAdam(AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	pr.run(t, adam, Schedule{BaseLR: 0.1}, 0, 1)
	good := adam.State()
	with := func(edit func(s *State)) State {
		s := State{Optimizer: good.Optimizer, Step: good.Step, Tensors: map[string][]float32{}}
		for k, v := range good.Tensors {
			s.Tensors[k] = v
		}
		edit(&s)
		return s
	}
	fresh := func() Optimizer { o, _ := NewAdam(AdamConfig{Beta1: 0.9, Beta2: 0.999}); return o }
	for _, c := range []struct {
		name string
		opt  Optimizer
		s    State
		want string
	}{
		{"other optimizer", fresh(), with(func(s *State) { s.Optimizer = "sgd" }), `state is from "sgd"`},
		{"adamw into adam", fresh(), with(func(s *State) { s.Optimizer = "adamw" }), `state is from "adamw"`},
		{"negative step", fresh(), with(func(s *State) { s.Step = -1 }), "negative step"},
		{"missing", fresh(), with(func(s *State) { delete(s.Tensors, "optim.exp_avg_sq.layerb") }), "missing optim.exp_avg_sq.layerb"},
		{"length", fresh(), with(func(s *State) { s.Tensors["optim.exp_avg.layera"] = make([]float32, 3) }), "optim.exp_avg.layera has 3 values, param layera has 4"},
		{"unexpected", fresh(), with(func(s *State) { s.Tensors["optim.momentum_buffer.layera"] = nil }), "unexpected optim.momentum_buffer.layera"},
		{"buffers into sgd without momentum", func() Optimizer { o, _ := NewSGD(SGDConfig{}); return o }(), State{Optimizer: "sgd", Step: 3, Tensors: map[string][]float32{"optim.momentum_buffer.layera": make([]float32, 4)}}, "unexpected optim.momentum_buffer.layera"},
		{"sgd momentum without buffers", func() Optimizer { o, _ := NewSGD(SGDConfig{Momentum: 0.9}); return o }(), State{Optimizer: "sgd", Step: 3}, "missing optim.momentum_buffer.layera"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.opt.SetState(c.s, pr.params)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "train: ") {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
	// The state is copied: changing the source afterwards does not reach the optimizer.
	opt := fresh()
	src := with(func(*State) {})
	src.Tensors["optim.exp_avg.layera"] = append([]float32(nil), good.Tensors["optim.exp_avg.layera"]...)
	if err := opt.SetState(src, pr.params); err != nil {
		t.Fatal(err)
	}
	src.Tensors["optim.exp_avg.layera"][0] = 1e9
	if opt.State().Tensors["optim.exp_avg.layera"][0] == 1e9 {
		t.Error("SetState kept a reference to the caller's buffer")
	}
}

func TestStepErrors(t *testing.T) {
	for _, kind := range []string{"sgd", "adam"} {
		t.Run(kind, func(t *testing.T) {
			opt, _ := NewOptimizer(DefaultOptimizerConfig(kind))
			pr := newProblem(4, 2)
			pr.grads(0)
			for _, c := range []struct {
				name   string
				params []Param
				lr     float64
				want   string
			}{
				{"nan lr", pr.params, math.NaN(), "learning rate NaN"},
				{"negative lr", pr.params, -1, "learning rate -1"},
				{"short grad", []Param{{Name: "x", Data: make([]float32, 3), Grad: make([]float32, 2)}}, 0.1, "param x has 3 values but 2 gradient values"},
				{"duplicate", []Param{{Name: "x"}, {Name: "x"}}, 0.1, `param name "x" appears twice`},
			} {
				if err := opt.Step(c.params, c.lr); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "train: "+kind+": ") {
					t.Errorf("%s: got %v, want %q", c.name, err, c.want)
				}
			}
			if err := opt.Step(pr.params, 0.1); err != nil {
				t.Fatal(err)
			}
			if err := opt.Step(pr.params[:1], 0.1); err == nil || !strings.Contains(err.Error(), "got 1 params, the optimizer holds state for 2") {
				t.Errorf("fewer params: got %v", err)
			}
			swapped := []Param{pr.params[1], pr.params[0]}
			if err := opt.Step(swapped, 0.1); err == nil || !strings.Contains(err.Error(), "param 0 is layerb with 2 values, the optimizer holds state for layera with 4") {
				t.Errorf("reordered params: got %v", err)
			}
		})
	}
}

func TestNewOptimizer(t *testing.T) {
	for _, kind := range []string{"sgd", "adam", "adamw"} {
		opt, err := NewOptimizer(DefaultOptimizerConfig(kind))
		if err != nil || opt.Name() != kind {
			t.Errorf("%s: got %v, %v", kind, opt, err)
		}
	}
	for _, c := range []struct {
		cfg  OptimizerConfig
		want string
	}{
		{OptimizerConfig{Kind: "rmsprop"}, `unknown optimizer "rmsprop" (choose sgd, adam or adamw)`},
		{OptimizerConfig{Kind: "sgd", Beta1: 0.9, Eps: 1e-8}, "sgd does not use beta1, eps"},
		{OptimizerConfig{Kind: "adam", Momentum: 0.9, Beta2: 0.999}, "adam does not use momentum"},
		{OptimizerConfig{Kind: "adamw", Nesterov: true}, "adamw does not use nesterov"},
		{OptimizerConfig{Kind: "sgd", Nesterov: true}, "nesterov needs momentum > 0"},
		{OptimizerConfig{Kind: "sgd", Momentum: 0.9, Dampening: 0.1, Nesterov: true}, "dampening 0"},
		{OptimizerConfig{Kind: "sgd", Momentum: -0.1}, "momentum = -0.1 is outside"},
		{OptimizerConfig{Kind: "sgd", WeightDecay: math.NaN()}, "weight decay = NaN"},
		{OptimizerConfig{Kind: "adam", Beta1: 1, Beta2: 0.999}, "beta1 = 1 is outside [0, 1)"},
		{OptimizerConfig{Kind: "adam", Beta1: 0.9, Beta2: 0.999, Eps: -1}, "eps = -1"},
	} {
		if _, err := NewOptimizer(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "train: ") {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
}

// vgg16Sizes lists the parameter sizes of torchvision's vgg16 (138,357,544 values).
func vgg16Sizes() []int {
	var sizes []int
	in := 3
	for _, out := range []int{64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512} {
		sizes = append(sizes, out*in*9, out)
		in = out
	}
	for _, fc := range [][2]int{{4096, 512 * 7 * 7}, {4096, 4096}, {1000, 4096}} {
		sizes = append(sizes, fc[0]*fc[1], fc[0])
	}
	return sizes
}

func TestVGG16Sizes(t *testing.T) {
	n := 0
	for _, s := range vgg16Sizes() {
		n += s
	}
	if n != 138_357_544 {
		t.Errorf("got %d parameters, want 138,357,544", n)
	}
}

// BenchmarkStepVGG16 times one optimizer step over VGG16's 138M parameters (run with
// -benchtime=5x; it needs about 2.5 GB). Compare -cpu 1,2 for the parallel speed-up.
func BenchmarkStepVGG16(b *testing.B) {
	sizes := vgg16Sizes()
	params := make([]Param, len(sizes))
	total := 0
	for i, n := range sizes {
		params[i] = Param{Name: "p" + string(rune('A'+i)), Data: make([]float32, n), Grad: make([]float32, n)}
		for j := range params[i].Grad {
			params[i].Grad[j] = float32(j%7) * 1e-3
		}
		total += n
	}
	for _, cfg := range []OptimizerConfig{
		{Kind: "sgd", Momentum: 0.9, WeightDecay: 5e-4},
		{Kind: "adamw", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01},
	} {
		b.Run(cfg.Kind, func(b *testing.B) {
			opt, err := NewOptimizer(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := opt.Step(params, 0.01); err != nil { // allocate the state outside the timing
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				opt.Step(params, 0.01)
			}
			b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
		})
	}
}
