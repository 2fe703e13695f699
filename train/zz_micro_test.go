package train

import "testing"

func BenchmarkMicro(b *testing.B) {
	for _, kind := range []string{"sgd", "adamw"} {
		b.Run(kind, func(b *testing.B) {
			n := 1 << 15
			params := []Param{{Name: "a", Data: make([]float32, n), Grad: make([]float32, n)}}
			cfg := OptimizerConfig{Kind: "sgd", Momentum: 0.9, WeightDecay: 5e-4}
			if kind == "adamw" {
				cfg = OptimizerConfig{Kind: "adamw", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
			}
			opt, _ := NewOptimizer(cfg)
			opt.Step(params, 0.01)
			for b.Loop() {
				opt.Step(params, 0.01)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
		})
	}
}
