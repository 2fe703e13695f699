package infer

import (
	"context"
	"image"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/metrics"
)

// Class is one class with its probability.
type Class struct {
	Name  string  `json:"class"`
	Index int     `json:"index"`
	Prob  float64 `json:"prob"`
}

// Classify returns the k most probable classes of the image, most probable first (ties
// to the lower index). The image is resized (shorter side) and centre-cropped to the
// model's input size, as in evaluation.
func (m *Model) Classify(ctx context.Context, img image.Image, k int) ([]Class, error) {
	out, err := m.ClassifyBatch(ctx, []image.Image{img}, k)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ClassifyBatch classifies several images, up to Options.Batch per forward pass.
func (m *Model) ClassifyBatch(ctx context.Context, imgs []image.Image, k int) ([][]Class, error) {
	ps, err := m.classProbs(ctx, imgs)
	if err != nil {
		return nil, err
	}
	out := make([][]Class, len(ps))
	for i, p := range ps {
		out[i] = m.Top(p, k)
	}
	return out, nil
}

// Top returns the k most probable classes of a classifier's probabilities.
func (m *Model) Top(p *Probs, k int) []Class {
	var top []Class
	for _, i := range metrics.TopClasses(p.Data, k) {
		top = append(top, Class{Name: m.names[i], Index: i, Prob: float64(p.Data[i])})
	}
	return top
}

// classProbs runs a classifier on imgs in batches and returns each image's softmax
// probabilities (averaged with its mirror image's under TTA).
func (m *Model) classProbs(ctx context.Context, imgs []image.Image) ([]*Probs, error) {
	if err := m.need(label.Classification, "Classify"); err != nil {
		return nil, err
	}
	cfg := m.net.Config
	h, w, classes := cfg.InputH, cfg.InputW, cfg.Classes
	tf := data.Transform{CropH: h, CropW: w}
	passes := 1
	if m.opt.TTA && !m.opt.NoFlip {
		passes = 2
	}
	out := make([]*Probs, len(imgs))
	full := len(imgs) / m.opt.Batch
	prog := newProgress(m.opt.Progress, (full+len(imgs)-full*m.opt.Batch)*passes)
	size := 3 * h * w
	for lo := 0; lo < len(imgs); {
		part := imgs[lo : lo+batchSize(len(imgs)-lo, m.opt.Batch)]
		n := len(part)
		in := make([]float32, n*size)
		for i, img := range part {
			chw, _, _, err := data.Preprocess(rgba(img), tf, label.Classification)
			if err != nil {
				return nil, err
			}
			copy(in[i*size:], chw)
			out[lo+i] = &Probs{Classes: classes, H: 1, W: 1, Data: make([]float32, classes)}
		}
		for pass := range passes {
			if pass == 1 {
				mirrorCHW(in, n*3, h, w)
			}
			err := m.run(ctx, func(s *slot) error {
				logits, err := s.forward(in, n, h, w)
				if err != nil {
					return err
				}
				probs := make([]float32, n*classes)
				if err := metrics.Softmax(logits, n, classes, probs); err != nil {
					return err
				}
				for i := range n {
					d := out[lo+i].Data
					for c := range classes {
						d[c] += probs[i*classes+c] / float32(passes)
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			prog.step()
		}
		lo += n
	}
	return out, nil
}

// mirrorCHW mirrors planes of h×w floats left-right in place.
func mirrorCHW(x []float32, planes, h, w int) {
	for p := range planes {
		for y := range h {
			r := x[(p*h+y)*w:][:w]
			for i, j := 0, w-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
		}
	}
}
