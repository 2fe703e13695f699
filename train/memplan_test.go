package train

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/losses"
)

// TestPlanMemoryExact trains tiny models for a few SGD steps with and without
// ops.PlanMemory (pooled activation buffers) and requires bit-identical losses,
// gradients and evaluation logits: sharing buffers must change nothing but memory.
func TestPlanMemoryExact(t *testing.T) {
	for _, arch := range []string{"vgg19-unet", "vgg16-segnet", "vgg11-bn", "alexnet"} {
		t.Run(arch, func(t *testing.T) {
			type run struct {
				losses []float64
				grads  [][]float32
				logits []float32
				plan   *ops.MemoryPlan
			}
			do := func(plan bool) run {
				cfg := graphs.Config{Arch: arch, Mult: 1.0 / 16, Seed: 3, Classes: 5}
				h := 32
				if arch == "alexnet" {
					h = 67
				}
				cfg.InputH = h
				m, err := graphs.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				gr, err := m.Build(2, h, h, graphs.Train)
				if err != nil {
					t.Fatal(err)
				}
				loss, err := losses.Build(gr.Logits, randomLabels(m, gr), losses.Spec{})
				if err != nil {
					t.Fatal(err)
				}
				grads, err := G.Grad(loss, gr.Params...)
				if err != nil {
					t.Fatal(err)
				}
				var r run
				if plan {
					r.plan = ops.PlanMemory(gr.G)
				}
				vm := G.NewTapeMachine(gr.G)
				defer vm.Close()
				opt, _ := NewOptimizer(DefaultOptimizerConfig("sgd"))
				var params []Param
				for _, p := range m.Trainable() {
					params = append(params, Param{Name: p.Name, Data: p.Data})
				}
				rng := rand.New(rand.NewPCG(5, 6))
				for step := 0; step < 3; step++ {
					in := gr.InputT.Float32s()
					for i := range in {
						in[i] = float32(rng.NormFloat64())
					}
					m.SetStep(uint64(step))
					vm.Reset()
					if err := vm.RunAll(); err != nil {
						t.Fatal(err)
					}
					terms, err := losses.LastTerms(loss)
					if err != nil || terms.Total == 0 {
						t.Fatalf("loss after step %d: %v, %v", step, terms.Total, err)
					}
					r.losses = append(r.losses, terms.Total)
					for j, g := range grads {
						params[j].Grad = g.Value().Data().([]float32)
						if step == 2 {
							r.grads = append(r.grads, append([]float32(nil), params[j].Grad...))
						}
					}
					if err := opt.Step(params, 0.01); err != nil {
						t.Fatal(err)
					}
				}
				eg, err := m.Build(2, h, h, graphs.Eval)
				if err != nil {
					t.Fatal(err)
				}
				copy(eg.InputT.Float32s(), gr.InputT.Float32s())
				if plan {
					ops.PlanMemory(eg.G)
				}
				evm := G.NewTapeMachine(eg.G)
				defer evm.Close()
				for range 2 {
					evm.Reset()
					if err := evm.RunAll(); err != nil {
						t.Fatal(err)
					}
				}
				r.logits = append([]float32(nil), eg.Logits.Value().Data().([]float32)...)
				return r
			}
			base, planned := do(false), do(true)
			pl := planned.plan
			if pl.Nodes() == 0 || pl.PoolFloats() == 0 || pl.PeakFloats() > pl.PoolFloats() {
				t.Errorf("plan pooled %d nodes, %d floats: want some", pl.Nodes(), pl.PoolFloats())
			}
			// The run follows the simulated order: every output takes its place in the
			// arena, which is all the pool allocates, and holds little more than the most
			// floats live at once.
			if pl.Fallbacks() != 0 || pl.PoolFloats() != int64(pl.ArenaFloats()) {
				t.Errorf("%d acquisitions fell back to own buffers; pool %d floats, arena %d", pl.Fallbacks(), pl.PoolFloats(), pl.ArenaFloats())
			}
			if r := float64(pl.ArenaFloats()) / float64(pl.PeakFloats()); r > 1.15 {
				t.Errorf("arena %d floats is %.2fx the peak live %d", pl.ArenaFloats(), r, pl.PeakFloats())
			}
			t.Logf("training plan: %d nodes, arena %d floats, peak live %d", pl.Nodes(), pl.ArenaFloats(), pl.PeakFloats())
			for i := range base.losses {
				if base.losses[i] != planned.losses[i] {
					t.Errorf("step %d: loss %v with the plan, %v without", i, planned.losses[i], base.losses[i])
				}
			}
			for j := range base.grads {
				for k := range base.grads[j] {
					if base.grads[j][k] != planned.grads[j][k] {
						t.Fatalf("gradient %d[%d]: %v with the plan, %v without", j, k, planned.grads[j][k], base.grads[j][k])
					}
				}
			}
			for k := range base.logits {
				if base.logits[k] != planned.logits[k] {
					t.Fatalf("eval logits[%d]: %v with the plan, %v without", k, planned.logits[k], base.logits[k])
				}
			}
		})
	}
}

// randomLabels returns the labels node of a training graph, random classes.
func randomLabels(m *graphs.Model, gr *graphs.Graph) *G.Node {
	shape := []int{gr.Batch}
	if m.Info.Task == label.Segmentation {
		shape = []int{gr.Batch, gr.H, gr.W}
	}
	t := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Int))
	r := rand.New(rand.NewPCG(7, 0x1abe1))
	for i, lab := 0, t.Ints(); i < len(lab); i++ {
		lab[i] = r.IntN(m.Config.Classes)
	}
	return G.NewTensor(gr.G, tensor.Int, len(shape), G.WithShape(shape...), G.WithValue(t), G.WithName("labels"))
}
