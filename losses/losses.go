// Package losses builds loss nodes for vggo's Gorgonia graphs: softmax cross-entropy with
// an ignore index, class weights and label smoothing (PyTorch's CrossEntropyLoss
// semantics), soft multi-class Dice, and their sum.
//
// Every loss takes float32 logits, (N, C, H, W) for segmentation or (N, C) for
// classification, and a tensor.Int labels node, (N, H, W) or (N), holding class indices
// (label.Ignore, 255, marks targets to ignore). It returns a float32 scalar node
// that G.Grad accepts as a cost. The softmax is fused into the loss: one op computes the
// loss with a log-sum-exp (logits of ±1e4 neither overflow nor lose the gradient) and
// keeps the per-target log-sum-exp for its gradient op. Work is split into chunks fixed
// by the shape and run on up to GOMAXPROCS goroutines; the result is the same bit for
// bit whatever the number of goroutines.
package losses

import (
	"fmt"
	"math"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/label"
)

// CEOptions configures CrossEntropy. The zero value is plain cross-entropy that ignores
// label 255, averaged over the counted targets.
type CEOptions struct {
	// IgnoreIndex is the label whose targets contribute nothing to the loss, its
	// normaliser or the gradient. 0 means label.Ignore (255) so that the zero value
	// suits VOC; to drop class 0 give it a zero weight instead. label.NoIgnore ignores nothing.
	IgnoreIndex int `json:"ignore_index,omitempty"`
	// Weights, if set, holds one non-negative weight per class. Each target's loss is
	// multiplied by the weight of its label and the mean divides by the summed weight of
	// the counted targets, as PyTorch's CrossEntropyLoss(weight=w) does.
	Weights []float32 `json:"weights,omitempty"`
	// LabelSmoothing ε in [0, 1] mixes the one-hot target with the uniform distribution
	// (PyTorch's label_smoothing): loss = (1-ε)·NLL + (ε/C)·Σ_c w_c·(-log p_c), both
	// terms divided by the summed weight of the counted targets.
	LabelSmoothing float64 `json:"label_smoothing,omitempty"`
}

// DiceOptions configures Dice. The zero value ignores label 255, smooths by 1 and
// averages over all classes.
type DiceOptions struct {
	// IgnoreIndex as in CEOptions: 0 means 255, label.NoIgnore ignores nothing.
	IgnoreIndex int `json:"ignore_index,omitempty"`
	// Smooth s is added to the numerator and the denominator of every class's Dice
	// coefficient, (2·Σp·y + s)/(Σp + Σy + s); 0 means 1. It keeps the loss defined for a
	// class absent from both labels and prediction (coefficient near 1, no penalty).
	Smooth float64 `json:"smooth,omitempty"`
	// PresentOnly averages over the classes that occur in the batch's (non-ignored)
	// labels instead of over all C classes.
	PresentOnly bool `json:"present_only,omitempty"`
}

// Terms is the value of each part of a loss node after the last run of its graph; read
// it with LastTerms.
type Terms struct {
	Total   float64 // the node's value: CE + DiceWeight·Dice, or the single term
	CE      float64 // cross-entropy; 0 if not part of the loss
	Dice    float64 // dice loss, before DiceWeight; 0 if not part of the loss
	Counted int64   // targets (pixels or samples) not ignored
	Weight  float64 // Σ w[label] over the counted targets: the divisor of the CE mean
}

// CrossEntropy returns the mean softmax cross-entropy of logits against labels over the
// class axis (axis 1), as PyTorch's CrossEntropyLoss(weight, ignore_index,
// label_smoothing) with reduction 'mean'. A batch whose every target is ignored (or has
// weight 0) gives 0 and a zero gradient, where PyTorch gives NaN. A label that is neither
// a class index nor the ignore index makes the run fail with a *LabelError.
func CrossEntropy(logits, labels *G.Node, opt CEOptions) (*G.Node, error) {
	cfg, err := ceConfig(opt)
	if err != nil {
		return nil, err
	}
	return apply("CrossEntropy", logits, labels, cfg)
}

// Dice returns the soft multi-class Dice loss of softmax(logits) against one-hot labels:
// per class c, D_c = (2·Σ p_c·y_c + s)/(Σ p_c + Σ y_c + s) with sums over every counted
// pixel of the batch (ignored pixels are left out), and loss = 1 - mean over classes of
// D_c (all C classes, or those present in the labels with PresentOnly; 0 if none).
func Dice(logits, labels *G.Node, opt DiceOptions) (*G.Node, error) {
	cfg, err := diceConfig(opt)
	if err != nil {
		return nil, err
	}
	return apply("Dice", logits, labels, cfg)
}

// Combined returns CrossEntropy + diceWeight·Dice as one fused op (one softmax). Both
// options must ignore the same label.
func Combined(logits, labels *G.Node, ce CEOptions, dice DiceOptions, diceWeight float64) (*G.Node, error) {
	cfg, err := ceConfig(ce)
	if err != nil {
		return nil, err
	}
	dcfg, err := diceConfig(dice)
	if err != nil {
		return nil, err
	}
	if cfg.ignore != dcfg.ignore {
		return nil, fmt.Errorf("losses: cross-entropy ignores label %d but dice ignores %d; use one ignore index", cfg.ignore, dcfg.ignore)
	}
	if !(diceWeight > 0) || math.IsInf(diceWeight, 0) {
		return nil, fmt.Errorf("losses: dice weight must be positive and finite, got %v", diceWeight)
	}
	cfg.diceCoef, cfg.diceSmooth, cfg.presentOnly = diceWeight, dcfg.diceSmooth, dcfg.presentOnly
	return apply("CE+Dice", logits, labels, cfg)
}

// LastTerms returns the parts of a loss node built by this package as of the last run
// of its graph. It reads the op's own state, which no later op can overwrite, so it is
// the reliable way to log the loss (and its parts) of a training step.
func LastTerms(loss *G.Node) (Terms, error) {
	if loss == nil {
		return Terms{}, fmt.Errorf("losses: LastTerms of a nil node")
	}
	op, ok := loss.Op().(*lossOp)
	if !ok {
		return Terms{}, fmt.Errorf("losses: node %v is not a loss built by package losses (op %v)", loss.Name(), loss.Op())
	}
	switch {
	case op.st.err != nil:
		return Terms{}, fmt.Errorf("losses: %s: last run failed: %w", op.name, op.st.err)
	case op.st.runs == 0:
		return Terms{}, fmt.Errorf("losses: %s has not run yet", op.name)
	}
	return op.st.last, nil
}

func ignoreOf(i int) int {
	if i == 0 {
		return label.Ignore
	}
	return i
}

func ceConfig(opt CEOptions) (config, error) {
	cfg := config{ceCoef: 1, ignore: ignoreOf(opt.IgnoreIndex), smoothing: opt.LabelSmoothing}
	if !(opt.LabelSmoothing >= 0 && opt.LabelSmoothing <= 1) {
		return config{}, fmt.Errorf("losses: label smoothing must be in [0, 1], got %v", opt.LabelSmoothing)
	}
	if opt.Weights != nil {
		cfg.weights = make([]float64, len(opt.Weights))
		for i, w := range opt.Weights {
			if !(w >= 0) || math.IsInf(float64(w), 0) {
				return config{}, fmt.Errorf("losses: class weight %d must be finite and non-negative, got %v", i, w)
			}
			cfg.weights[i] = float64(w)
		}
	}
	return cfg, nil
}

func diceConfig(opt DiceOptions) (config, error) {
	cfg := config{diceCoef: 1, ignore: ignoreOf(opt.IgnoreIndex), diceSmooth: opt.Smooth, presentOnly: opt.PresentOnly}
	if cfg.diceSmooth == 0 {
		cfg.diceSmooth = 1
	}
	if !(cfg.diceSmooth > 0) || math.IsInf(cfg.diceSmooth, 0) {
		return config{}, fmt.Errorf("losses: dice smoothing must be positive and finite, got %v", opt.Smooth)
	}
	return cfg, nil
}

// apply checks the nodes and adds the fused loss op to their graph.
func apply(name string, logits, labels *G.Node, cfg config) (*G.Node, error) {
	if logits == nil || labels == nil {
		return nil, fmt.Errorf("losses: %s: logits and labels must be non-nil nodes", name)
	}
	if dt := logits.Dtype(); dt != tensor.Float32 {
		return nil, fmt.Errorf("losses: %s: logits must be float32, got %v", name, dt)
	}
	if dt := labels.Dtype(); dt != tensor.Int {
		return nil, fmt.Errorf("losses: %s: labels must be tensor.Int class indices, got %v (make the node with G.NewTensor(g, tensor.Int, ...))", name, dt)
	}
	_, c, _, err := checkShapes(logits.Shape(), labels.Shape())
	if err != nil {
		return nil, err
	}
	if cfg.weights != nil && len(cfg.weights) != c {
		return nil, fmt.Errorf("losses: %s: got %d class weights for logits %v with %d classes", name, len(cfg.weights), logits.Shape(), c)
	}
	op := &lossOp{cfg: cfg, dims: logits.Shape().Dims(), name: name, st: &state{}}
	n, err := G.ApplyOp(op, logits, labels)
	if err != nil {
		return nil, fmt.Errorf("losses: %s: %w", name, err)
	}
	return n, nil
}

// checkShapes accepts logits (N, C, H, W) with labels (N, H, W), or logits (N, C) with
// labels (N), and returns N, C and H·W (1 for classification).
func checkShapes(ls, ys tensor.Shape) (n, c, hw int, err error) {
	switch ls.Dims() {
	case 4:
		want := tensor.Shape{ls[0], ls[2], ls[3]}
		if !ys.Eq(want) {
			return 0, 0, 0, fmt.Errorf("losses: labels shape %v does not match logits %v (N, C, H, W): want %v", ys, ls, want)
		}
		n, c, hw = ls[0], ls[1], ls[2]*ls[3]
	case 2:
		want := tensor.Shape{ls[0]}
		if ys.Dims() != 1 || ys[0] != ls[0] {
			return 0, 0, 0, fmt.Errorf("losses: labels shape %v does not match logits %v (N, C): want %v", ys, ls, want)
		}
		n, c, hw = ls[0], ls[1], 1
	default:
		return 0, 0, 0, fmt.Errorf("losses: logits shape %v: want (N, C, H, W) or (N, C)", ls)
	}
	if n <= 0 || c <= 0 || hw <= 0 {
		return 0, 0, 0, fmt.Errorf("losses: logits shape %v has an empty axis", ls)
	}
	return n, c, hw, nil
}

// Kind names a loss in a Spec (and on the command line).
type Kind string

// The loss kinds Build knows.
const (
	KindCE     Kind = "ce"
	KindDice   Kind = "dice"
	KindCEDice Kind = "ce+dice"
)

// Kinds lists the valid Spec.Kind values.
func Kinds() []Kind { return []Kind{KindCE, KindDice, KindCEDice} }

// Spec describes a loss as plain data, for a training configuration and its checkpoint.
// The zero value is cross-entropy ignoring label 255.
type Spec struct {
	Kind            Kind      `json:"kind,omitempty"`            // "ce" (default), "dice" or "ce+dice"
	IgnoreIndex     int       `json:"ignore_index,omitempty"`    // 0 means 255; label.NoIgnore ignores nothing
	ClassWeights    []float32 `json:"class_weights,omitempty"`   // CE only
	LabelSmoothing  float64   `json:"label_smoothing,omitempty"` // CE only
	DiceSmooth      float64   `json:"dice_smooth,omitempty"`     // dice only; 0 means 1
	DicePresentOnly bool      `json:"dice_present_only,omitempty"`
	DiceWeight      float64   `json:"dice_weight,omitempty"` // "ce+dice" only; 0 means 1
}

// Build returns the loss node that s describes. An option that does not apply to the
// kind (class weights for "dice", a dice weight for "ce", ...) is an error, not ignored.
func Build(logits, labels *G.Node, s Spec) (*G.Node, error) {
	kind := s.Kind
	if kind == "" {
		kind = KindCE
	}
	ce := CEOptions{IgnoreIndex: s.IgnoreIndex, Weights: s.ClassWeights, LabelSmoothing: s.LabelSmoothing}
	dice := DiceOptions{IgnoreIndex: s.IgnoreIndex, Smooth: s.DiceSmooth, PresentOnly: s.DicePresentOnly}
	hasCE := s.ClassWeights != nil || s.LabelSmoothing != 0
	hasDice := s.DiceSmooth != 0 || s.DicePresentOnly
	switch kind {
	case KindCE:
		if hasDice || s.DiceWeight != 0 {
			return nil, fmt.Errorf("losses: loss %q takes no dice options (dice smooth %v, present only %t, dice weight %v); use %q",
				kind, s.DiceSmooth, s.DicePresentOnly, s.DiceWeight, KindCEDice)
		}
		return CrossEntropy(logits, labels, ce)
	case KindDice:
		if hasCE || s.DiceWeight != 0 {
			return nil, fmt.Errorf("losses: loss %q takes no cross-entropy options or dice weight (class weights %v, label smoothing %v, dice weight %v); use %q",
				kind, s.ClassWeights, s.LabelSmoothing, s.DiceWeight, KindCEDice)
		}
		return Dice(logits, labels, dice)
	case KindCEDice:
		w := s.DiceWeight
		if w == 0 {
			w = 1
		}
		return Combined(logits, labels, ce, dice, w)
	}
	valid := make([]string, 0, 3)
	for _, k := range Kinds() {
		valid = append(valid, string(k))
	}
	return nil, fmt.Errorf("losses: unknown loss kind %q (valid: %s)", s.Kind, strings.Join(valid, ", "))
}
