package graphs

import (
	"fmt"
	"io"
	"strings"
)

// Summary is a Keras-style description of a configuration: one row per layer and the
// parameter counts (batch-norm running statistics count as non-trainable parameters).
type Summary struct {
	Config       Config
	Info         ArchInfo
	Rows         []Row
	Total        int
	Trainable    int
	NonTrainable int
}

// Summarize describes cfg for a batch of one without allocating any weight or activation.
func Summarize(cfg Config) (*Summary, error) {
	n, err := specPass(cfg)
	if err != nil {
		return nil, err
	}
	s := &Summary{Config: n.cfg, Info: n.info, Rows: n.rows}
	for _, p := range n.params {
		c := prod(p.shape)
		s.Total += c
		if p.trainable {
			s.Trainable += c
		} else {
			s.NonTrainable += c
		}
	}
	return s, nil
}

// Print writes the summary as a table.
func (s *Summary) Print(w io.Writer) error {
	k, _ := s.Config.Divisor()
	title := fmt.Sprintf("Model: %s (%s, %d classes, input %dx%dx3", s.Info.Name, s.Info.Task, s.Config.Classes, s.Config.InputH, s.Config.InputW)
	if k > 1 {
		title += fmt.Sprintf(", width 1/%d", k)
	}
	if s.Config.Unpool != "" {
		title += ", unpool " + s.Config.Unpool
	}
	title += ")"
	const (
		wl, wm, wt, ws = 20, 16, 14, 22
	)
	rule := strings.Repeat("=", wl+wm+wt+ws+14)
	var b strings.Builder
	fmt.Fprintln(&b, title)
	fmt.Fprintln(&b, rule)
	fmt.Fprintf(&b, "%-*s %-*s %-*s %-*s %12s\n", wl, "Layer", wm, "Parameter", wt, "Type", ws, "Output shape (NCHW)", "Param #")
	fmt.Fprintln(&b, strings.Repeat("-", len(rule)))
	for _, r := range s.Rows {
		shape := make([]string, len(r.Shape))
		for i, v := range r.Shape {
			shape[i] = fmt.Sprint(v)
		}
		shape[0] = "None"
		fmt.Fprintf(&b, "%-*s %-*s %-*s %-*s %12s\n", wl, r.Layer, wm, r.Module, wt, r.Type, ws,
			"("+strings.Join(shape, ", ")+")", Commas(r.Params))
	}
	fmt.Fprintln(&b, rule)
	fmt.Fprintf(&b, "Total params: %s\n", Commas(s.Total))
	fmt.Fprintf(&b, "Trainable params: %s\n", Commas(s.Trainable))
	fmt.Fprintf(&b, "Non-trainable params: %s\n", Commas(s.NonTrainable))
	_, err := io.WriteString(w, b.String())
	return err
}

// Commas formats n with thousands separators, as Keras prints counts.
func Commas(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + Commas(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
