package train

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops"
	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/losses"
)

// Session is one compiled graph of a model, ready to run: the graph for a fixed batch
// shape, its memory plan and its tape machine. A training session adds the labels, the
// loss and the gradient of every trainable parameter; an evaluation session runs the
// model forward in evaluation mode. The trainer, the evaluator and the benchmark all
// step through a Session.
//
// A Session is not safe for concurrent use (neither is a Gorgonia tape machine).
type Session struct {
	Model *graphs.Model
	Graph *graphs.Graph
	Plan  *ops.MemoryPlan

	vm     G.VM
	loss   *G.Node
	grads  G.Nodes
	labels *tensor.Dense
}

// SessionOptions are the optional parts of a session.
type SessionOptions struct {
	Loss    losses.Spec  // training sessions: the loss (zero: cross-entropy)
	Profile *ops.Profile // when set, the session's ops report their time to it
	// Gemm is the matrix-multiply kernel family (zero: the fastest this CPU runs).
	Gemm gemm.Kernel
	// EvalLoss adds the loss and a labels input to an evaluation session (forward only):
	// the validation loss.
	EvalLoss bool
}

// NewTrainSession builds the training graph of m for batches of batch images of h×w: the
// model in train mode, the loss against a labels input, and the gradients.
func NewTrainSession(m *graphs.Model, batch, h, w int, opt SessionOptions) (*Session, error) {
	gr, err := m.Build(batch, h, w, graphs.Train, graphs.WithGemm(opt.Gemm))
	if err != nil {
		return nil, err
	}
	s := &Session{Model: m, Graph: gr}
	if err := s.addLoss(opt.Loss); err != nil {
		return nil, err
	}
	if s.grads, err = G.Grad(s.loss, gr.Params...); err != nil {
		return nil, fmt.Errorf("train: gradients: %w", err)
	}
	s.compile(opt.Profile)
	return s, nil
}

// NewEvalSession builds the evaluation graph of m (forward only, running statistics,
// no dropout) for batches of batch images of h×w.
func NewEvalSession(m *graphs.Model, batch, h, w int, opt SessionOptions) (*Session, error) {
	gr, err := m.Build(batch, h, w, graphs.Eval, graphs.WithGemm(opt.Gemm))
	if err != nil {
		return nil, err
	}
	s := &Session{Model: m, Graph: gr}
	if opt.EvalLoss {
		if err := s.addLoss(opt.Loss); err != nil {
			return nil, err
		}
	}
	s.compile(opt.Profile)
	return s, nil
}

// addLoss adds the labels input and the loss node.
func (s *Session) addLoss(spec losses.Spec) error {
	gr := s.Graph
	shape := []int{gr.Batch}
	if s.Model.Info.Task == label.Segmentation {
		shape = []int{gr.Batch, gr.H, gr.W}
	}
	s.labels = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Int))
	labels := G.NewTensor(gr.G, tensor.Int, len(shape), G.WithShape(shape...), G.WithValue(s.labels), G.WithName("labels"))
	var err error
	s.loss, err = losses.Build(gr.Logits, labels, spec)
	return err
}

// compile plans the activations' memory and makes the machine. There is no
// BindDualValues: the gradient nodes' own outputs are the gradients (binding would make
// the machine add each into a second, parameter-sized buffer every step).
func (s *Session) compile(prof *ops.Profile) {
	if prof != nil {
		prof.Attach(s.Graph.G)
	}
	s.Plan = ops.PlanMemory(s.Graph.G)
	s.vm = G.NewTapeMachine(s.Graph.G, G.WithEngine(ops.Engine{}))
}

// Input is the input batch (batch, 3, h, w) to fill before Run.
func (s *Session) Input() []float32 { return s.Graph.InputT.Data().([]float32) }

// Labels is the label batch to fill before Run (sessions with a loss): one class per
// image, or one per pixel.
func (s *Session) Labels() []int { return s.labels.Data().([]int) }

// Run runs the graph once: forward, and for a training session the loss and backward.
func (s *Session) Run() error {
	s.vm.Reset()
	s.Plan.Reset()
	return s.vm.RunAll()
}

// Loss is the value of the loss (and its parts) of the last Run.
func (s *Session) Loss() (losses.Terms, error) { return losses.LastTerms(s.loss) }

// Gradients sets params[i].Grad to the gradient of the i-th trainable parameter from
// the last Run; params are in the order of Model.Trainable. The slices are the graph's
// own and change at the next Run.
func (s *Session) Gradients(params []Param) error {
	if len(params) != len(s.grads) {
		return fmt.Errorf("train: %d params for %d gradients", len(params), len(s.grads))
	}
	for i, n := range s.grads {
		v := n.Value()
		if v == nil {
			return fmt.Errorf("train: gradient of %s was not computed", params[i].Name)
		}
		params[i].Grad = v.Data().([]float32)
	}
	return nil
}

// Logits are the output of the last Run, valid until the next: (batch, classes) or
// (batch, classes, h, w).
func (s *Session) Logits() []float32 { return s.Graph.Logits.Value().Data().([]float32) }

// Close releases the machine.
func (s *Session) Close() { s.vm.Close() }

// Params returns m's trainable parameters as the optimizer sees them; noDecay exempts
// biases and batch-norm parameters from weight decay.
func Params(m *graphs.Model, noDecay bool) []Param {
	var ps []Param
	for _, p := range m.Trainable() {
		ps = append(ps, Param{Name: p.Name, Data: p.Data, NoDecay: noDecay && p.NoDecay})
	}
	return ps
}
