package losses

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/label"
)

// Hand-computed cases. Notation: nll(v|y) = logsumexp(v) - v_y.
//
// Classification, C = 3, two samples:
//
//	s0 = (0, 0, 0), label 1:  nll = ln 3                      = 1.0986123
//	s1 = (2, 0, 0), label 0:  nll = ln(e² + 2) - 2 = 2.2395448 - 2 = 0.2395448
//	mean                     = (1.0986123 + 0.2395448)/2     = 0.6690785
//	weights (2, 1, 1)        = (1·1.0986123 + 2·0.2395448)/(1 + 2) = 0.5259006
//	s1 ignored               = 1.0986123
//
// Label smoothing ε = 0.1 (PyTorch): (1-ε)·Σw_y·nll/W + (ε/C)·Σ_i Σ_c w_c·(-log p_ic)/W.
//
//	-log p(s0) = (ln 3, ln 3, ln 3);  -log p(s1) = (0.2395448, 2.2395448, 2.2395448)
//	unweighted: 0.9·0.6690785 + (0.1/3)·(3.2958369 + 4.7186343)/2 = 0.6021707 + 0.1335745 = 0.7357452
//	w = (2,1,1), W = 3: 0.9·0.5259006 + (0.1/3)·(4·ln 3 + 2·0.2395448 + 2·2.2395448)/3
//	                  = 0.4733105 + (0.1/3)·(4.3944492 + 4.9581791)/3 = 0.4733105 + 0.1039181 = 0.5772286
//
// Segmentation, N = 1, C = 2, H = 1, W = 3; class-0 plane (0, 1, 0), class-1 plane (0, 0, 2),
// labels (0, 1, 255):
//
//	pixel 0 = (0, 0) label 0: ln 2 = 0.6931472;  pixel 1 = (1, 0) label 1: ln(e + 1) = 1.3132617
//	mean = 1.0032044;  weights (1, 3): (0.6931472 + 3·1.3132617)/(1 + 3) = 1.1582331
//
// Extreme logits, C = 3, every sample (1e4, -1e4, 0), labels (0, 1, 2):
//
//	nll = (0, 20000, 10000), mean 10000; p = (1, 0, 0) so the gradient of sample i is
//	(p - onehot(y_i))/3: (0,0,0), (1,-1,0)/3, (1,0,-1)/3.
//
// Dice, C = 2, N = 1, H = 1, W = 4, all logits 0 (p = ½ everywhere), labels (0, 0, 1, 255), s = 1:
//
//	class 0: I = 1, P = 1.5, Y = 2 → D = (2+1)/(1.5+2+1) = 0.6666667
//	class 1: I = ½, P = 1.5, Y = 1 → D = (1+1)/(1.5+1+1) = 0.5714286
//	loss = 1 - (0.6666667 + 0.5714286)/2 = 0.3809524
//	PresentOnly gives the same (both classes present); labels (0, 0, 0, 255) with
//	PresentOnly: I = 1.5, P = 1.5, Y = 3 → D = 4/5.5 → loss 0.2727273, and over all
//	classes: class 1 has I = 0, P = 1.5, Y = 0 → D = 1/2.5; loss = 1 - (0.7272727+0.4)/2 = 0.4363636.
func TestHandComputed(t *testing.T) {
	cls := []float32{0, 0, 0, 2, 0, 0}
	seg := []float32{0, 1, 0, 0, 0, 2}
	extreme := []float32{1e4, -1e4, 0, 1e4, -1e4, 0, 1e4, -1e4, 0}
	extremeSeg := []float32{1e4, 1e4, 1e4, -1e4, -1e4, -1e4, 0, 0, 0}
	zeros4 := make([]float32, 8)
	tests := []struct {
		name     string
		b        builder
		shape    []int
		x        []float32
		lshape   []int
		labels   []int
		want     float64
		wantGrad []float32 // nil: not checked here (see TestGradient)
	}{
		{"ce mean", ceBuilder(CEOptions{}), []int{2, 3}, cls, []int{2}, []int{1, 0}, 0.6690785,
			// s0: (1/3, 1/3-1, 1/3)/2; s1: p = (0.7869860, 0.1065070, 0.1065070), (p-onehot)/2.
			[]float32{1.0 / 6, -1.0 / 3, 1.0 / 6, -0.1065070, 0.0532535, 0.0532535}},
		{"ce weighted", ceBuilder(CEOptions{Weights: []float32{2, 1, 1}}), []int{2, 3}, cls, []int{2}, []int{1, 0}, 0.5259006,
			// s0: 1·(p-onehot)/3; s1: 2·(p-onehot)/3.
			[]float32{1.0 / 9, -2.0 / 9, 1.0 / 9, -0.1420093, 0.0710047, 0.0710047}},
		{"ce ignore", ceBuilder(CEOptions{}), []int{2, 3}, cls, []int{2}, []int{1, 255}, 1.0986123,
			[]float32{1.0 / 3, -2.0 / 3, 1.0 / 3, 0, 0, 0}},
		{"ce custom ignore", ceBuilder(CEOptions{IgnoreIndex: -100}), []int{2, 3}, cls, []int{2}, []int{-100, 0}, 0.2395448, nil},
		{"ce smoothing", ceBuilder(CEOptions{LabelSmoothing: 0.1}), []int{2, 3}, cls, []int{2}, []int{1, 0}, 0.7357452, nil},
		{"ce smoothing weighted", ceBuilder(CEOptions{LabelSmoothing: 0.1, Weights: []float32{2, 1, 1}}), []int{2, 3}, cls, []int{2}, []int{1, 0}, 0.5772286, nil},
		{"seg mean", ceBuilder(CEOptions{}), []int{1, 2, 1, 3}, seg, []int{1, 1, 3}, []int{0, 1, 255}, 1.0032044, nil},
		{"seg weighted", ceBuilder(CEOptions{Weights: []float32{1, 3}}), []int{1, 2, 1, 3}, seg, []int{1, 1, 3}, []int{0, 1, 255}, 1.1582331, nil},
		{"extreme", ceBuilder(CEOptions{}), []int{3, 3}, extreme, []int{3}, []int{0, 1, 2}, 10000,
			[]float32{0, 0, 0, 1.0 / 3, -1.0 / 3, 0, 1.0 / 3, 0, -1.0 / 3}},
		// Planes (1e4,1e4,1e4), (-1e4,-1e4,-1e4), (0,0,0): every pixel is (1e4, -1e4, 0).
		{"extreme seg", ceBuilder(CEOptions{}), []int{1, 3, 1, 3}, extremeSeg, []int{1, 1, 3}, []int{0, 2, 1}, (0 + 10000 + 20000) / 3.0, nil},
		{"dice", diceBuilder(DiceOptions{}), []int{1, 2, 1, 4}, zeros4, []int{1, 1, 4}, []int{0, 0, 1, 255}, 0.3809524, nil},
		{"dice present only", diceBuilder(DiceOptions{PresentOnly: true}), []int{1, 2, 1, 4}, zeros4, []int{1, 1, 4}, []int{0, 0, 1, 255}, 0.3809524, nil},
		{"dice one class present", diceBuilder(DiceOptions{PresentOnly: true}), []int{1, 2, 1, 4}, zeros4, []int{1, 1, 4}, []int{0, 0, 0, 255}, 0.2727273, nil},
		{"dice one class all", diceBuilder(DiceOptions{}), []int{1, 2, 1, 4}, zeros4, []int{1, 1, 4}, []int{0, 0, 0, 255}, 0.4363636, nil},
		// ce+dice: pixels (0,0),(0,0),(0,0) labels 0,0,1 → CE = ln 2; plus 0.5·dice 0.3809524.
		{"ce+dice", specBuilder(Spec{Kind: KindCEDice, DiceWeight: 0.5}), []int{1, 2, 1, 4}, zeros4, []int{1, 1, 4}, []int{0, 0, 1, 255}, math.Ln2 + 0.5*0.3809524, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := dense32(tc.shape, append([]float32(nil), tc.x...))
			y := denseInt(tc.lshape, tc.labels)
			got, grad := withGrad(t, tc.b, x, y, 1)
			if !close64(float64(got), tc.want, 1e-6, 1e-6) {
				t.Errorf("loss = %.7f, want %.7f", got, tc.want)
			}
			for i, g := range grad {
				if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
					t.Fatalf("grad[%d] = %v", i, g)
				}
			}
			if tc.wantGrad != nil {
				for i := range grad {
					if !close64(float64(grad[i]), float64(tc.wantGrad[i]), 1e-6, 1e-5) {
						t.Errorf("grad = %v, want %v", grad, tc.wantGrad)
						break
					}
				}
			}
		})
	}
}

// TestAllIgnored: a batch whose every target is ignored gives 0 and a zero gradient for
// every kind, where PyTorch's 0/0 gives NaN.
func TestAllIgnored(t *testing.T) {
	builders := map[string]builder{
		"ce":             ceBuilder(CEOptions{}),
		"ce weighted ls": ceBuilder(CEOptions{Weights: []float32{1, 2, 3}, LabelSmoothing: 0.2}),
		"dice":           diceBuilder(DiceOptions{}),
		"dice present":   diceBuilder(DiceOptions{PresentOnly: true}),
		"ce+dice":        specBuilder(Spec{Kind: KindCEDice}),
	}
	for name, b := range builders {
		t.Run(name, func(t *testing.T) {
			x := randLogits(1, 3, 2, 3, 2, 2)
			y := randLabels(2, 3, 1.0, 255, 2, 2, 2)
			got, grad := withGrad(t, b, x, y, 1)
			if got != 0 {
				t.Errorf("loss = %v, want 0", got)
			}
			for i, g := range grad {
				if g != 0 {
					t.Fatalf("grad[%d] = %v, want 0", i, g)
				}
			}
		})
	}
	// Counted targets whose weight is 0 divide by 0 in PyTorch too: 0 here.
	x := randLogits(3, 3, 4, 3)
	y := denseInt([]int{4}, []int{0, 0, 255, 0})
	got, grad := withGrad(t, ceBuilder(CEOptions{Weights: []float32{0, 1, 1}}), x, y, 1)
	if got != 0 || slicesAnyNonZero(grad) {
		t.Errorf("zero-weight batch: loss %v grad %v, want 0 and zeros", got, grad)
	}
}

func slicesAnyNonZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return true
		}
	}
	return false
}

// TestGradient compares the op's gradient with central differences of its own forward
// pass, and its forward value with refLoss, on seeded random inputs. The forward value
// is read in float64 from the op state, so the differences are accurate to ~1e-9 and the
// tolerance is set by the float32 gradient.
func TestGradient(t *testing.T) {
	w5 := []float32{0.5, 1, 2, 0, 1.5}
	w7 := []float32{1, 2, 0.5, 1, 3, 0.25, 1}
	seg := []int{2, 5, 3, 4}
	segL := []int{2, 3, 4}
	cls := []int{4, 7}
	clsL := []int{4}
	tests := []struct {
		name          string
		opt           Spec
		shape, lshape []int
		ignoreFrac    float64
		scale         float32
	}{
		{"seg ce", Spec{}, seg, segL, 0.2, 1},
		{"seg ce weights", Spec{ClassWeights: w5}, seg, segL, 0.2, 1},
		{"seg ce weights smoothing", Spec{ClassWeights: w5, LabelSmoothing: 0.15}, seg, segL, 0.2, 1},
		{"seg ce scaled", Spec{LabelSmoothing: 0.3}, seg, segL, 0.1, 2.5},
		{"cls ce", Spec{}, cls, clsL, 0, 1},
		{"cls ce ignore weights smoothing", Spec{ClassWeights: w7, LabelSmoothing: 0.1}, cls, clsL, 0.25, 1},
		{"cls ce full smoothing", Spec{LabelSmoothing: 1}, cls, clsL, 0, 1},
		{"seg dice", Spec{Kind: KindDice}, seg, segL, 0.2, 1},
		{"seg dice present only", Spec{Kind: KindDice, DicePresentOnly: true, DiceSmooth: 0.5}, seg, segL, 0.2, 1},
		{"seg ce+dice", Spec{Kind: KindCEDice, DiceWeight: 0.7, ClassWeights: w5, LabelSmoothing: 0.1}, seg, segL, 0.2, 3},
		{"cls dice", Spec{Kind: KindDice}, cls, clsL, 0, 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.shape[1]
			x := randLogits(uint64(100+i), 3, tc.shape...)
			y := randLabels(uint64(200+i), c, tc.ignoreFrac, 255, tc.lshape...)
			b := specBuilder(tc.opt)

			got, grad := withGrad(t, b, x, y, tc.scale)
			cfg := specConfig(t, tc.opt)
			hw := x.Shape().TotalSize() / (tc.shape[0] * c)
			want := refLoss(x.Data().([]float32), y.Data().([]int), tc.shape[0], c, hw, cfg)
			if !close64(float64(got), want, 1e-6, 1e-6) {
				t.Errorf("loss = %.8f, reference %.8f", got, want)
			}

			fd := fdGrad(t, b, x, y, float64(tc.scale), 1e-3)
			bad := 0
			for j := range fd {
				if !close64(float64(grad[j]), fd[j], 2e-6, 1e-4) {
					if bad < 5 {
						t.Errorf("grad[%d] = %.8g, finite difference %.8g", j, grad[j], fd[j])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d gradient entries differ", bad, len(fd))
			}
		})
	}
}

func specConfig(t *testing.T, s Spec) config {
	t.Helper()
	ce, err := ceConfig(CEOptions{IgnoreIndex: s.IgnoreIndex, Weights: s.ClassWeights, LabelSmoothing: s.LabelSmoothing})
	if err != nil {
		t.Fatal(err)
	}
	d, err := diceConfig(DiceOptions{IgnoreIndex: s.IgnoreIndex, Smooth: s.DiceSmooth, PresentOnly: s.DicePresentOnly})
	if err != nil {
		t.Fatal(err)
	}
	switch s.Kind {
	case KindDice:
		return d
	case KindCEDice:
		ce.diceCoef, ce.diceSmooth, ce.presentOnly = max(s.DiceWeight, 0), d.diceSmooth, d.presentOnly
		if ce.diceCoef == 0 {
			ce.diceCoef = 1
		}
	}
	return ce
}

// TestExtremeLogitsFinite: logits of ±1e4 everywhere, with every option, give a finite
// loss and gradient.
func TestExtremeLogitsFinite(t *testing.T) {
	x := randLogits(7, 1, 2, 5, 3, 4)
	for i, v := range x.Data().([]float32) {
		x.Data().([]float32)[i] = float32(math.Copysign(1e4, float64(v)))
	}
	y := randLabels(8, 5, 0.2, 255, 2, 3, 4)
	for _, s := range []Spec{
		{}, {ClassWeights: []float32{1, 2, 3, 4, 5}, LabelSmoothing: 0.1},
		{Kind: KindDice}, {Kind: KindCEDice, DicePresentOnly: true},
	} {
		got, grad := withGrad(t, specBuilder(s), x, y, 1)
		if math.IsNaN(float64(got)) || math.IsInf(float64(got), 0) {
			t.Errorf("%+v: loss = %v", s, got)
		}
		for i, g := range grad {
			if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
				t.Fatalf("%+v: grad[%d] = %v", s, i, g)
			}
		}
		want := refLoss(x.Data().([]float32), y.Data().([]int), 2, 5, 12, specConfig(t, s))
		if !close64(float64(got), want, 1e-3, 1e-6) {
			t.Errorf("%+v: loss = %v, reference %v", s, got, want)
		}
	}
}

// TestLabelOutOfRange: a label that is neither a class nor the ignore index fails the
// run with a *LabelError naming it.
func TestLabelOutOfRange(t *testing.T) {
	g := G.NewGraph()
	x, y := inputs(g, randLogits(1, 1, 2, 3, 2, 2), denseInt([]int{2, 2, 2}, []int{0, 1, 2, 255, 1, 3, 0, 2}))
	loss, err := CrossEntropy(x, y, CEOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	err = vm.RunAll()
	var le *LabelError
	if errors.As(err, &le) {
		t.Log("Gorgonia's RunAll errors now unwrap: AsLabelError is no longer needed")
	}
	le, ok := AsLabelError(err)
	if !ok {
		t.Fatalf("run error = %v, want a *LabelError", err)
	}
	if le.Label != 3 || le.Index != 5 || le.Classes != 3 || le.Ignore != 255 {
		t.Errorf("got %+v, want label 3 at index 5 of 3 classes", *le)
	}
	if !strings.Contains(err.Error(), "losses: label 3 at flat index 5 is out of range [0, 3)") {
		t.Errorf("message %q", err)
	}
	if _, err := LastTerms(loss); err == nil || !strings.Contains(err.Error(), "last run failed: losses: label 3") {
		t.Errorf("LastTerms after a failed run: error %v", err)
	}
	// label.NoIgnore: 255 is then out of range too.
	g2 := G.NewGraph()
	x2, y2 := inputs(g2, randLogits(1, 1, 2, 3), denseInt([]int{2}, []int{0, 255}))
	if _, err := CrossEntropy(x2, y2, CEOptions{IgnoreIndex: label.NoIgnore}); err != nil {
		t.Fatal(err)
	}
	err = G.NewTapeMachine(g2).RunAll()
	if le, ok := AsLabelError(err); !ok || le.Label != 255 {
		t.Errorf("label.NoIgnore: run error %v, want label 255 out of range", err)
	}
}

func TestBuildErrors(t *testing.T) {
	g := G.NewGraph()
	seg := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 4, 5), G.WithName("seg"))
	segY := G.NewTensor(g, tensor.Int, 3, G.WithShape(2, 4, 5), G.WithName("segY"))
	badY := G.NewTensor(g, tensor.Int, 3, G.WithShape(2, 5, 4), G.WithName("badY"))
	floatY := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 4, 5), G.WithName("floatY"))
	cls := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 3), G.WithName("cls"))
	clsY := G.NewVector(g, tensor.Int, G.WithShape(3), G.WithName("clsY"))
	vec := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("vec"))
	f64 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(2, 3, 4, 5), G.WithName("f64"))

	tests := []struct {
		name    string
		x, y    *G.Node
		s       Spec
		wantErr string
	}{
		{"unknown kind", seg, segY, Spec{Kind: "focal"}, `losses: unknown loss kind "focal" (valid: ce, dice, ce+dice)`},
		{"label shape", seg, badY, Spec{}, "losses: labels shape (2, 5, 4) does not match logits (2, 3, 4, 5) (N, C, H, W): want (2, 4, 5)"},
		{"label batch", cls, clsY, Spec{}, "losses: labels shape (3) does not match logits (4, 3) (N, C): want (4)"},
		{"float labels", seg, floatY, Spec{}, "labels must be tensor.Int class indices, got float32"},
		{"float64 logits", f64, segY, Spec{}, "logits must be float32, got float64"},
		{"vector logits", vec, clsY, Spec{}, "losses: logits shape (3): want (N, C, H, W) or (N, C)"},
		{"weights length", seg, segY, Spec{ClassWeights: []float32{1, 2}}, "got 2 class weights for logits (2, 3, 4, 5) with 3 classes"},
		{"negative weight", seg, segY, Spec{ClassWeights: []float32{1, -2, 1}}, "class weight 1 must be finite and non-negative, got -2"},
		{"nan weight", seg, segY, Spec{ClassWeights: []float32{1, float32(math.NaN()), 1}}, "class weight 1 must be finite"},
		{"smoothing range", seg, segY, Spec{LabelSmoothing: 1.5}, "label smoothing must be in [0, 1], got 1.5"},
		{"dice smooth", seg, segY, Spec{Kind: KindDice, DiceSmooth: -1}, "dice smoothing must be positive and finite, got -1"},
		{"dice weight", seg, segY, Spec{Kind: KindCEDice, DiceWeight: -1}, "dice weight must be positive and finite, got -1"},
		{"dice option on ce", seg, segY, Spec{DicePresentOnly: true}, `loss "ce" takes no dice options`},
		{"dice weight on ce", seg, segY, Spec{DiceWeight: 2}, `loss "ce" takes no dice options`},
		{"weights on dice", seg, segY, Spec{Kind: KindDice, ClassWeights: []float32{1, 1, 1}}, `loss "dice" takes no cross-entropy options`},
		{"nil", nil, segY, Spec{}, "logits and labels must be non-nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.x, tc.y, tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want %q", err, tc.wantErr)
			}
		})
	}
	// Combined with two ignore indices.
	if _, err := Combined(seg, segY, CEOptions{}, DiceOptions{IgnoreIndex: 254}, 1); err == nil ||
		!strings.Contains(err.Error(), "cross-entropy ignores label 255 but dice ignores 254") {
		t.Errorf("Combined ignore mismatch: %v", err)
	}
	if _, err := LastTerms(seg); err == nil || !strings.Contains(err.Error(), "not a loss built by package losses") {
		t.Errorf("LastTerms of an input: %v", err)
	}
	l, err := CrossEntropy(seg, segY, CEOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LastTerms(l); err == nil || !strings.Contains(err.Error(), "has not run yet") {
		t.Errorf("LastTerms before a run: %v", err)
	}
}

// TestHashing: losses that differ in any option are distinct nodes; identical ones are
// merged by Gorgonia (and share state, which is then correct).
func TestHashing(t *testing.T) {
	g := G.NewGraph()
	x, y := inputs(g, randLogits(1, 1, 2, 3, 2, 2), randLabels(2, 3, 0.2, 255, 2, 2, 2))
	specs := []Spec{
		{}, {IgnoreIndex: 254}, {ClassWeights: []float32{1, 2, 3}}, {ClassWeights: []float32{1, 2, 3.0001}},
		{LabelSmoothing: 0.1}, {Kind: KindDice}, {Kind: KindDice, DiceSmooth: 2}, {Kind: KindDice, DicePresentOnly: true},
		{Kind: KindCEDice}, {Kind: KindCEDice, DiceWeight: 0.5},
	}
	seen := map[*G.Node]int{}
	for i, s := range specs {
		n, err := Build(x, y, s)
		if err != nil {
			t.Fatal(err)
		}
		if j, ok := seen[n]; ok {
			t.Errorf("spec %d %+v merged with spec %d %+v", i, s, j, specs[j])
		}
		seen[n] = i
	}
	a, _ := CrossEntropy(x, y, CEOptions{Weights: []float32{1, 2, 3}})
	b, _ := CrossEntropy(x, y, CEOptions{Weights: []float32{1, 2, 3}})
	if a != b {
		t.Errorf("identical losses are distinct nodes %v, %v", a, b)
	}
}

// TestCostValueAfterRun checks what a training step reads: the loss of a small conv net
// plus an L2 term, with gradients, compared with the same loss on a forward-only graph.
// Gorgonia's register allocator may give a dead node's register to a later node; the
// loss node's value must survive RunAll (and LastTerms reads the op state anyway).
func TestCostValueAfterRun(t *testing.T) {
	img := randLogits(11, 1, 2, 3, 6, 6)
	w1 := randLogits(12, 0.5, 4, 3, 3, 3)
	w2 := randLogits(13, 0.5, 5, 4, 1, 1)
	y := randLabels(14, 5, 0.2, 255, 2, 6, 6)

	build := func(train bool) (*G.ExprGraph, *G.Node, *G.Node, G.Nodes) {
		g := G.NewGraph()
		in := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 6, 6), G.WithValue(img.Clone()), G.WithName("img"))
		lab := G.NewTensor(g, tensor.Int, 3, G.WithShape(2, 6, 6), G.WithValue(y.Clone()), G.WithName("y"))
		p1 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithValue(w1.Clone()), G.WithName("w1"))
		p2 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(5, 4, 1, 1), G.WithValue(w2.Clone()), G.WithName("w2"))
		h := G.Must(G.Rectify(G.Must(G.Conv2d(in, p1, tensor.Shape{3, 3}, []int{1, 1}, []int{1, 1}, []int{1, 1}))))
		logits := G.Must(G.Conv2d(h, p2, tensor.Shape{1, 1}, []int{0, 0}, []int{1, 1}, []int{1, 1}))
		loss, err := Build(logits, lab, Spec{Kind: KindCEDice, ClassWeights: []float32{1, 2, 1, 1, 0.5}})
		if err != nil {
			t.Fatal(err)
		}
		l2 := G.Must(G.Mul(G.NewConstant(float32(1e-2)), G.Must(G.Sum(G.Must(G.Square(p1))))))
		cost := G.Must(G.Add(loss, l2))
		params := G.Nodes{p1, p2}
		if train {
			if _, err := G.Grad(cost, params...); err != nil {
				t.Fatal(err)
			}
		}
		return g, loss, cost, params
	}

	g, loss, cost, _ := build(false)
	vm := G.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	wantLoss := loss.Value().Data().(float32)
	wantCost := cost.Value().Data().(float32)

	g, loss, cost, params := build(true)
	vm = G.NewTapeMachine(g, G.BindDualValues(params...))
	for step := range 3 {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		terms, err := LastTerms(loss)
		if err != nil {
			t.Fatal(err)
		}
		if got := loss.Value().Data().(float32); got != wantLoss {
			t.Errorf("step %d: loss.Value() = %v, want %v", step, got, wantLoss)
		}
		if got := cost.Value().Data().(float32); got != wantCost {
			t.Errorf("step %d: cost.Value() = %v, want %v", step, got, wantCost)
		}
		if float32(terms.Total) != wantLoss || terms.CE == 0 || terms.Dice == 0 {
			t.Errorf("step %d: LastTerms = %+v, want total %v", step, terms, wantLoss)
		}
		vm.Reset()
	}
}

// TestRepeatedRuns: the op's reused buffers give the same gradient on every run, and a
// new label value is picked up.
func TestRepeatedRuns(t *testing.T) {
	x := randLogits(21, 2, 2, 4, 3, 3)
	y := randLabels(22, 4, 0.1, 255, 2, 3, 3)
	g := G.NewGraph()
	xn, yn := inputs(g, x, y)
	loss, err := Combined(xn, yn, CEOptions{}, DiceOptions{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := G.Grad(loss, xn)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	var first []float32
	for run := range 3 {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		got := gr[0].Value().Data().([]float32)
		if run == 0 {
			first = append([]float32(nil), got...)
		} else {
			for i := range got {
				if got[i] != first[i] {
					t.Fatalf("run %d: grad[%d] = %v, first run %v", run, i, got[i], first[i])
				}
			}
		}
		vm.Reset()
	}
	before := loss.Value().Data().(float32)
	y2 := randLabels(23, 4, 0.1, 255, 2, 3, 3)
	if err := G.Let(yn, y2); err != nil {
		t.Fatal(err)
	}
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	after := loss.Value().Data().(float32)
	want := refLoss(x.Data().([]float32), y2.Data().([]int), 2, 4, 9, config{ceCoef: 1, diceCoef: 1, ignore: 255, diceSmooth: 1})
	if after == before || !close64(float64(after), want, 1e-6, 1e-6) {
		t.Errorf("after new labels: loss %v (was %v), want %v", after, before, want)
	}
}

// TestDeterministic: the same inputs give bit-identical loss and gradient whatever
// GOMAXPROCS is (chunking depends on the shape only).
func TestDeterministic(t *testing.T) {
	x := randLogits(31, 4, 2, 21, 40, 40)
	y := randLabels(32, 21, 0.1, 255, 2, 40, 40)
	b := specBuilder(Spec{Kind: KindCEDice, LabelSmoothing: 0.1})
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	l1, g1 := withGrad(t, b, x, y, 1)
	runtime.GOMAXPROCS(max(4, prev))
	l2, g2 := withGrad(t, b, x, y, 1)
	if l1 != l2 {
		t.Errorf("loss %v with 1 proc, %v with %d", l1, l2, max(4, prev))
	}
	for i := range g1 {
		if g1[i] != g2[i] {
			t.Fatalf("grad[%d] %v with 1 proc, %v with more", i, g1[i], g2[i])
		}
	}
	want := refLoss(x.Data().([]float32), y.Data().([]int), 2, 21, 1600, specConfig(t, Spec{Kind: KindCEDice, LabelSmoothing: 0.1}))
	if !close64(float64(l1), want, 1e-6, 1e-6) {
		t.Errorf("loss %v, reference %v", l1, want)
	}
}

func BenchmarkCrossEntropy(b *testing.B) {
	for _, sh := range [][]int{{4, 21, 128, 128}, {64, 1000}} {
		b.Run(fmt.Sprint(sh), func(b *testing.B) {
			n, c := sh[0], sh[1]
			hw := tensor.Shape(sh).TotalSize() / (n * c)
			x := randLogits(1, 4, sh...).Data().([]float32)
			y := randLabels(2, c, 0.1, 255, n*hw).Data().([]int)
			cfg := config{ceCoef: 1, diceCoef: 1, ignore: 255, diceSmooth: 1}
			st := &state{}
			b.ReportAllocs()
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				if _, err := forward(&cfg, st, x, y, n, c, hw); err != nil {
					b.Fatal(err)
				}
				backward(&cfg, st, x, y, 1)
			}
		})
	}
}
