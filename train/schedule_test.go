package train

import (
	"math"
	"strings"
	"testing"
)

func TestScheduleLR(t *testing.T) {
	type point struct {
		step int
		want float64
	}
	for _, c := range []struct {
		name   string
		s      Schedule
		points []point
	}{
		{
			name: "constant", s: Schedule{BaseLR: 0.1},
			points: []point{{-5, 0.1}, {0, 0.1}, {1_000_000, 0.1}},
		},
		{
			// warm-up factor 0.001 (the default) over 10 steps:
			// lr(s) = 0.1·(0.001 + 0.999·s/10); lr(5) = 0.1·0.5005 = 0.05005.
			name: "constant with warm-up", s: Schedule{Kind: "constant", BaseLR: 0.1, WarmupSteps: 10},
			points: []point{{0, 0.0001}, {5, 0.05005}, {9, 0.1 * (0.001 + 0.999*0.9)}, {10, 0.1}, {500, 0.1}},
		},
		{
			// 0.1·0.1^floor(s/30)
			name: "step", s: Schedule{Kind: "step", BaseLR: 0.1, StepSize: 30},
			points: []point{{0, 0.1}, {29, 0.1}, {30, 0.01}, {59, 0.01}, {60, 0.001}, {95, 0.0001}},
		},
		{
			// warm-up 5 steps from 0.5·0.1, then 0.1·0.5^floor((s-5)/10)
			name: "step with warm-up", s: Schedule{Kind: "step", BaseLR: 0.1, StepSize: 10, Gamma: 0.5, WarmupSteps: 5, WarmupFactor: 0.5},
			points: []point{{0, 0.05}, {1, 0.06}, {4, 0.09}, {5, 0.1}, {14, 0.1}, {15, 0.05}, {25, 0.025}},
		},
		{
			// 0.01·(1 - s/100)^0.9: lr(50) = 0.01·0.5^0.9 = 0.01·0.53588673;
			// lr(99) = 0.01·0.01^0.9 = 0.01·10^-1.8 = 0.01·0.015848932; 0 from step 100.
			name: "poly", s: Schedule{Kind: "poly", BaseLR: 0.01, TotalSteps: 100},
			points: []point{{0, 0.01}, {50, 0.0053588673}, {99, 0.00015848932}, {100, 0}, {150, 0}},
		},
		{
			// power 2, warm-up 10 of 110 steps: lr(60) = 0.01·(1 - 50/100)^2 = 0.0025.
			name: "poly with warm-up", s: Schedule{Kind: "poly", BaseLR: 0.01, TotalSteps: 110, WarmupSteps: 10, WarmupFactor: 0.1, Power: 2},
			points: []point{{0, 0.001}, {10, 0.01}, {60, 0.0025}, {110, 0}},
		},
		{
			// 0.001 + 0.099·(1 + cos(π·s/100))/2: lr(25) = 0.001 + 0.099·0.85355339 =
			// 0.0855017857; lr(50) = 0.001 + 0.0495 = 0.0505; lr(75) = 0.001 + 0.099·0.14644661 = 0.0154982143.
			name: "cosine", s: Schedule{Kind: "cosine", BaseLR: 0.1, MinLR: 0.001, TotalSteps: 100},
			points: []point{{0, 0.1}, {25, 0.0855017857}, {50, 0.0505}, {75, 0.0154982143}, {100, 0.001}, {400, 0.001}},
		},
		{
			// warm-up 20 steps, cosine over the remaining 80 to 0: lr(60) = 0.1·(1+cos(π/2))/2 = 0.05.
			name: "cosine with warm-up", s: Schedule{Kind: "cosine", BaseLR: 0.1, TotalSteps: 100, WarmupSteps: 20},
			points: []point{{0, 0.0001}, {20, 0.1}, {60, 0.05}, {100, 0}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.s.Validate(); err != nil {
				t.Fatal(err)
			}
			for _, p := range c.points {
				if got := c.s.LR(p.step); math.Abs(got-p.want) > 1e-10 {
					t.Errorf("LR(%d): got %.12g, want %.12g", p.step, got, p.want)
				}
			}
		})
	}
}

// TestWarmupEndpoints checks the warm-up for every kind: it starts at exactly
// WarmupFactor·BaseLR, rises linearly, and meets the main schedule's start (BaseLR)
// at WarmupSteps.
func TestWarmupEndpoints(t *testing.T) {
	for _, s := range []Schedule{
		{Kind: "constant", BaseLR: 0.02, WarmupSteps: 7, WarmupFactor: 0.25},
		{Kind: "step", BaseLR: 0.02, WarmupSteps: 7, WarmupFactor: 0.25, StepSize: 3},
		{Kind: "poly", BaseLR: 0.02, WarmupSteps: 7, WarmupFactor: 0.25, TotalSteps: 50},
		{Kind: "cosine", BaseLR: 0.02, WarmupSteps: 7, WarmupFactor: 0.25, TotalSteps: 50, MinLR: 0.001},
	} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := s.LR(0); got != 0.25*0.02 {
			t.Errorf("%s: LR(0) = %v, want %v", s.Kind, got, 0.25*0.02)
		}
		if got := s.LR(7); got != 0.02 {
			t.Errorf("%s: LR(7) = %v, want BaseLR", s.Kind, got)
		}
		step := (0.02 - 0.005) / 7
		for i := 1; i < 7; i++ {
			if d := s.LR(i) - s.LR(i-1); math.Abs(d-step) > 1e-15 {
				t.Errorf("%s: LR(%d)-LR(%d) = %v, want %v", s.Kind, i, i-1, d, step)
			}
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Kind: "linear", BaseLR: 0.1}, `unknown lr schedule "linear" (choose constant, step, poly or cosine)`},
		{Schedule{}, "base lr 0 must be positive"},
		{Schedule{BaseLR: math.Inf(1)}, "must be positive"},
		{Schedule{BaseLR: 0.1, WarmupSteps: -1}, "must not be negative"},
		{Schedule{BaseLR: 0.1, WarmupFactor: 0.1}, "warmup steps is 0"},
		{Schedule{BaseLR: 0.1, WarmupSteps: 5, WarmupFactor: 1.5}, "must lie in (0, 1]"},
		{Schedule{Kind: "step", BaseLR: 0.1}, "step size 0 must be positive"},
		{Schedule{Kind: "step", BaseLR: 0.1, StepSize: 5, Gamma: -1}, "gamma -1"},
		{Schedule{Kind: "poly", BaseLR: 0.1}, "total steps 0 must exceed warmup steps 0"},
		{Schedule{Kind: "cosine", BaseLR: 0.1, TotalSteps: 10, WarmupSteps: 10}, "total steps 10 must exceed warmup steps 10"},
		{Schedule{Kind: "poly", BaseLR: 0.1, TotalSteps: 10, Power: -1}, "power -1"},
		{Schedule{Kind: "cosine", BaseLR: 0.1, TotalSteps: 10, MinLR: 0.1}, "min lr 0.1 must lie in [0, base lr 0.1)"},
		{Schedule{Kind: "cosine", BaseLR: 0.1, TotalSteps: 10, Gamma: 0.5}, "gamma is set, but only the step schedule uses it"},
		{Schedule{Kind: "poly", BaseLR: 0.1, TotalSteps: 10, MinLR: 0.01}, "min lr is set, but only the cosine schedule uses it"},
		{Schedule{BaseLR: 0.1, Power: 2}, "lr schedule constant: power is set, but only the poly schedule uses it"},
		{Schedule{Kind: "step", BaseLR: 0.1, StepSize: 1, Power: 2}, "power is set"},
		{Schedule{Kind: "cosine", BaseLR: 0.1, TotalSteps: 10, StepSize: 2}, "step size is set"},
	} {
		err := c.s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "train: ") {
			t.Errorf("%+v: got %v, want %q", c.s, err, c.want)
		}
	}
}
