package train

import (
	"encoding/json"
	"fmt"
	"math"
)

// Schedule is a learning-rate schedule: a pure function of the global step (counted
// from 0, one per optimizer step), so a resumed run needs no scheduler state. It is a
// plain value meant to be part of the saved training configuration; zero fields take
// the defaults noted, and fields that do not apply to Kind must stay zero (Validate
// refuses them).
//
// With W = WarmupSteps, f = WarmupFactor and s = step - W, T = TotalSteps - W:
//
//	step < W:  lr = BaseLR · (f + (1-f)·step/W)   linear warm-up from f·BaseLR
//	constant:  lr = BaseLR
//	step:      lr = BaseLR · Gamma^floor(s/StepSize)
//	poly:      lr = BaseLR · (1 - min(s,T)/T)^Power
//	cosine:    lr = MinLR + (BaseLR-MinLR)·(1 + cos(π·min(s,T)/T))/2
//
// so the warm-up reaches BaseLR at step W, where the main schedule starts from its own
// step 0 and spans the remaining TotalSteps - W steps. This is torch's
// SequentialLR([LinearLR(start_factor=f, total_iters=W), main], milestones=[W]) with
// main = StepLR, PolynomialLR(total_iters=T) or CosineAnnealingLR(T_max=T,
// eta_min=MinLR), as torchvision's reference scripts use them, in closed form; past T,
// poly stays at 0 and cosine at MinLR (torch's cosine would climb again).
type Schedule struct {
	Kind         string  `json:"kind"`                    // "constant" (also ""), "step", "poly" or "cosine"
	BaseLR       float64 `json:"base_lr"`                 // > 0
	TotalSteps   int     `json:"total_steps,omitempty"`   // poly, cosine: total optimizer steps of the run, > WarmupSteps
	WarmupSteps  int     `json:"warmup_steps,omitempty"`  // 0: no warm-up
	WarmupFactor float64 `json:"warmup_factor,omitempty"` // warm-up start factor in (0, 1]; 0 means 0.001
	StepSize     int     `json:"step_size,omitempty"`     // step: decay every StepSize steps, > 0
	Gamma        float64 `json:"gamma,omitempty"`         // step: decay factor > 0; 0 means 0.1
	Power        float64 `json:"power,omitempty"`         // poly: exponent > 0; 0 means 0.9
	MinLR        float64 `json:"min_lr,omitempty"`        // cosine: final lr (eta_min) in [0, BaseLR)
}

const (
	defaultWarmupFactor = 0.001
	defaultGamma        = 0.1
	defaultPower        = 0.9
)

func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// Resolved returns s with the defaults of the fields its kind uses filled in (Gamma,
// Power, WarmupFactor): the values it runs with. LR gives the same rates for both.
func (s Schedule) Resolved() Schedule {
	switch s.kindName() {
	case "step":
		s.Gamma = orDefault(s.Gamma, defaultGamma)
	case "poly":
		s.Power = orDefault(s.Power, defaultPower)
	}
	if s.WarmupSteps > 0 {
		s.WarmupFactor = orDefault(s.WarmupFactor, defaultWarmupFactor)
	}
	return s
}

// UnmarshalJSON reads a schedule, also in the field names of configurations written
// before the JSON keys were snake_case ("BaseLR", "TotalSteps", ...).
func (s *Schedule) UnmarshalJSON(b []byte) error {
	type plain Schedule
	var v struct {
		plain
		BaseLR       *float64 `json:"BaseLR"`
		TotalSteps   *int     `json:"TotalSteps"`
		WarmupSteps  *int     `json:"WarmupSteps"`
		WarmupFactor *float64 `json:"WarmupFactor"`
		StepSize     *int     `json:"StepSize"`
		MinLR        *float64 `json:"MinLR"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Schedule(v.plain)
	setIf(&s.BaseLR, v.BaseLR)
	setIf(&s.TotalSteps, v.TotalSteps)
	setIf(&s.WarmupSteps, v.WarmupSteps)
	setIf(&s.WarmupFactor, v.WarmupFactor)
	setIf(&s.StepSize, v.StepSize)
	setIf(&s.MinLR, v.MinLR)
	return nil
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// LR returns the learning rate for the global step (negative steps count as 0). It
// assumes Validate returns nil.
func (s Schedule) LR(step int) float64 {
	step = max(step, 0)
	if step < s.WarmupSteps {
		f := orDefault(s.WarmupFactor, defaultWarmupFactor)
		return s.BaseLR * (f + (1-f)*float64(step)/float64(s.WarmupSteps))
	}
	n := step - s.WarmupSteps
	total := s.TotalSteps - s.WarmupSteps
	switch s.Kind {
	case "step":
		return s.BaseLR * math.Pow(orDefault(s.Gamma, defaultGamma), float64(n/s.StepSize))
	case "poly":
		if n >= total {
			return 0
		}
		return s.BaseLR * math.Pow(1-float64(n)/float64(total), orDefault(s.Power, defaultPower))
	case "cosine":
		if n >= total {
			return s.MinLR
		}
		return s.MinLR + (s.BaseLR-s.MinLR)*(1+math.Cos(math.Pi*float64(n)/float64(total)))/2
	}
	return s.BaseLR
}

// Validate checks the schedule: a known kind, a positive base rate, the fields its
// kind needs, and no field its kind does not use.
func (s Schedule) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("train: lr schedule %s: "+format, append([]any{s.kindName()}, args...)...)
	}
	switch s.Kind {
	case "", "constant", "step", "poly", "cosine":
	default:
		return fmt.Errorf("train: unknown lr schedule %q (choose constant, step, poly or cosine)", s.Kind)
	}
	if !finite(s.BaseLR) || s.BaseLR <= 0 {
		return bad("base lr %v must be positive", s.BaseLR)
	}
	if s.WarmupSteps < 0 || s.TotalSteps < 0 {
		return bad("warmup steps %d and total steps %d must not be negative", s.WarmupSteps, s.TotalSteps)
	}
	if s.WarmupFactor != 0 {
		if s.WarmupSteps == 0 {
			return bad("warmup factor %v is set but warmup steps is 0 (set both, or neither)", s.WarmupFactor)
		}
		if !finite(s.WarmupFactor) || s.WarmupFactor < 0 || s.WarmupFactor > 1 {
			return bad("warmup factor %v must lie in (0, 1]", s.WarmupFactor)
		}
	}
	kind := s.kindName()
	unused := func(name string, set bool, usedBy string) error {
		if set && kind != usedBy {
			return bad("%s is set, but only the %s schedule uses it (leave it 0)", name, usedBy)
		}
		return nil
	}
	for _, u := range []error{
		unused("step size", s.StepSize != 0, "step"),
		unused("gamma", s.Gamma != 0, "step"),
		unused("power", s.Power != 0, "poly"),
		unused("min lr", s.MinLR != 0, "cosine"),
	} {
		if u != nil {
			return u
		}
	}
	return s.validateKind(bad)
}

// validateKind checks the fields the schedule's kind needs.
func (s Schedule) validateKind(bad func(format string, args ...any) error) error {
	switch s.kindName() {
	case "step":
		if s.StepSize <= 0 {
			return bad("step size %d must be positive (steps between decays)", s.StepSize)
		}
		if !finite(s.Gamma) || s.Gamma < 0 {
			return bad("gamma %v must be positive", s.Gamma)
		}
	case "poly", "cosine":
		if s.TotalSteps <= s.WarmupSteps {
			return bad("total steps %d must exceed warmup steps %d (set it to epochs × steps per epoch)", s.TotalSteps, s.WarmupSteps)
		}
		if !finite(s.Power) || s.Power < 0 {
			return bad("power %v must be positive", s.Power)
		}
		if !finite(s.MinLR) || s.MinLR < 0 || s.MinLR >= s.BaseLR {
			return bad("min lr %v must lie in [0, base lr %v)", s.MinLR, s.BaseLR)
		}
	}
	return nil
}

func (s Schedule) kindName() string {
	if s.Kind == "" {
		return "constant"
	}
	return s.Kind
}
