package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/vggo/vggo/label"
)

// ConfusionMatrix counts (ground truth, prediction) pairs of pixels over a whole
// evaluation set. Row = ground truth, column = prediction. Pixels labelled IgnoreIndex
// are skipped whatever their prediction. Matrices built over parts of a set (parallel
// workers, distributed shards) combine with Merge.
//
// A ConfusionMatrix is not safe for concurrent use: give each worker its own and merge.
type ConfusionMatrix struct {
	Classes int `json:"classes"`
	// IgnoreIndex is the label that is not scored: 0 means label.Ignore (255),
	// as elsewhere in vggo; label.NoIgnore scores every pixel. NewConfusionMatrix sets 255.
	IgnoreIndex int `json:"ignore_index"`
	// Counts[gt*Classes+pred] is the number of pixels of class gt predicted as pred.
	Counts []int64 `json:"counts"`
}

// NewConfusionMatrix returns an empty matrix over classes classes that ignores label
// 255. It panics if classes < 1.
func NewConfusionMatrix(classes int) *ConfusionMatrix {
	if classes < 1 {
		panic(fmt.Sprintf("metrics: NewConfusionMatrix(%d): need at least one class", classes))
	}
	return &ConfusionMatrix{Classes: classes, IgnoreIndex: label.Ignore, Counts: make([]int64, classes*classes)}
}

func (m *ConfusionMatrix) check() error {
	if m.Classes < 1 || len(m.Counts) != m.Classes*m.Classes {
		return fmt.Errorf("metrics: invalid confusion matrix: %d classes, %d counts (want classes², use NewConfusionMatrix)",
			m.Classes, len(m.Counts))
	}
	return nil
}

// Add counts one prediction per pixel against the labels, both flattened in the same
// order (any shape, e.g. (N, H, W)). A label equal to the ignore index is skipped. A
// label or (unignored) prediction outside [0, Classes) is an error naming it, and then
// nothing is counted.
func (m *ConfusionMatrix) Add(pred, labels []int) error {
	if len(pred) != len(labels) {
		return fmt.Errorf("metrics: %d predictions for %d labels", len(pred), len(labels))
	}
	return m.add(pred, len(pred), labels, len(labels), 1, len(labels))
}

// AddRegion counts the top-left h×w region of a prediction and a label image stored
// row-major with row strides predStride and labelStride: the valid part of a padded
// batch item, or a prediction made at a larger size than the ground truth (scoring is
// at the ground truth's resolution). Errors as Add.
func (m *ConfusionMatrix) AddRegion(pred []int, predStride int, labels []int, labelStride int, h, w int) error {
	if h < 0 || w < 0 || predStride < w || labelStride < w {
		return fmt.Errorf("metrics: region %dx%d does not fit row strides %d (pred) and %d (labels)", h, w, predStride, labelStride)
	}
	if h > 0 && w > 0 {
		if need := (h-1)*predStride + w; len(pred) < need {
			return fmt.Errorf("metrics: pred has %d values, region %dx%d with stride %d needs %d", len(pred), h, w, predStride, need)
		}
		if need := (h-1)*labelStride + w; len(labels) < need {
			return fmt.Errorf("metrics: labels have %d values, region %dx%d with stride %d needs %d", len(labels), h, w, labelStride, need)
		}
	}
	return m.add(pred, predStride, labels, labelStride, h, w)
}

// add validates, then counts, rows of w pixels.
func (m *ConfusionMatrix) add(pred []int, ps int, labels []int, ls int, h, w int) error {
	if err := m.check(); err != nil {
		return err
	}
	c, ignore := m.Classes, ignoreOf(m.IgnoreIndex)
	for r := range h {
		pr, lr := pred[r*ps:r*ps+w], labels[r*ls:r*ls+w]
		for i, l := range lr {
			if l == ignore {
				continue
			}
			if l < 0 || l >= c {
				return fmt.Errorf("metrics: label %d at row %d, column %d is out of range [0, %d) and is not the ignore index %d", l, r, i, c, ignore)
			}
			if p := pr[i]; p < 0 || p >= c {
				return fmt.Errorf("metrics: prediction %d at row %d, column %d is out of range [0, %d)", p, r, i, c)
			}
		}
	}
	for r := range h {
		pr, lr := pred[r*ps:r*ps+w], labels[r*ls:r*ls+w]
		for i, l := range lr {
			if l != ignore {
				m.Counts[l*c+pr[i]]++
			}
		}
	}
	return nil
}

// Merge adds other's counts to m. Both must have the same classes and ignore index.
func (m *ConfusionMatrix) Merge(other *ConfusionMatrix) error {
	if err := m.check(); err != nil {
		return err
	}
	if err := other.check(); err != nil {
		return err
	}
	if other.Classes != m.Classes || ignoreOf(other.IgnoreIndex) != ignoreOf(m.IgnoreIndex) {
		return fmt.Errorf("metrics: cannot merge a matrix of %d classes ignoring %d into one of %d classes ignoring %d",
			other.Classes, ignoreOf(other.IgnoreIndex), m.Classes, ignoreOf(m.IgnoreIndex))
	}
	for i, v := range other.Counts {
		m.Counts[i] += v
	}
	return nil
}

// Reset sets every count to 0.
func (m *ConfusionMatrix) Reset() { clear(m.Counts) }

// Total is the number of pixels counted (ignored pixels excluded).
func (m *ConfusionMatrix) Total() int64 {
	var t int64
	for _, v := range m.Counts {
		t += v
	}
	return t
}

// ClassScore is one class's line of Scores.
type ClassScore struct {
	Name string
	// IoU = TP/(TP+FP+FN); NaN when the class is absent (no ground-truth and no
	// predicted pixel).
	IoU float64
	// Acc = TP/GT (recall); NaN when the class has no ground-truth pixel.
	Acc float64
	// Present: the class occurs in the ground truth or in the prediction. Only present
	// classes enter mIoU.
	Present    bool
	GTPixels   int64 // TP + FN
	PredPixels int64 // TP + FP
	TP         int64
}

// Scores are the segmentation metrics of a confusion matrix.
// Every field is NaN when nothing was counted.
type Scores struct {
	// PixelAcc = trace/total.
	PixelAcc float64
	// MeanAcc is the mean of Acc over the classes with ground-truth pixels (a class
	// only predicted has no accuracy).
	MeanAcc float64
	// MeanIoU is the mean of IoU over the present classes.
	MeanIoU float64
	// FWIoU = Σ_c (GT_c/total)·IoU_c over the classes with ground-truth pixels.
	FWIoU    float64
	Pixels   int64 // pixels counted
	Present  int   // classes present
	PerClass []ClassScore
}

// Scores computes the metrics, naming classes with label.Names: class0, class1, ..., or
// the VOC names for 21 classes.
func (m *ConfusionMatrix) Scores() Scores {
	s, err := m.ScoresNamed(nil)
	if err != nil {
		// Only an invalid matrix fails with nil names; report it as all-NaN scores.
		nan := math.NaN()
		return Scores{PixelAcc: nan, MeanAcc: nan, MeanIoU: nan, FWIoU: nan}
	}
	return s
}

// ScoresNamed computes the metrics with the given class names (nil: label.Names).
func (m *ConfusionMatrix) ScoresNamed(names []string) (Scores, error) {
	if err := m.check(); err != nil {
		return Scores{}, err
	}
	c := m.Classes
	names, err := namesFor(c, names)
	if err != nil {
		return Scores{}, err
	}
	s := Scores{PerClass: make([]ClassScore, c)}
	gt, pr := make([]int64, c), make([]int64, c)
	var trace int64
	for i := range c {
		for j := range c {
			v := m.Counts[i*c+j]
			gt[i] += v
			pr[j] += v
		}
		trace += m.Counts[i*c+i]
	}
	for _, v := range gt {
		s.Pixels += v
	}
	var iouSum, accSum, fw float64
	var accN int
	for i := range c {
		tp := m.Counts[i*c+i]
		cs := ClassScore{Name: names[i], GTPixels: gt[i], PredPixels: pr[i], TP: tp,
			IoU: ratio(tp, gt[i]+pr[i]-tp), Acc: ratio(tp, gt[i]), Present: gt[i]+pr[i] > 0}
		if cs.Present {
			s.Present++
			iouSum += cs.IoU
		}
		if gt[i] > 0 {
			accN++
			accSum += cs.Acc
			fw += float64(gt[i]) / float64(s.Pixels) * cs.IoU
		}
		s.PerClass[i] = cs
	}
	nan := math.NaN()
	s.PixelAcc, s.MeanAcc, s.MeanIoU, s.FWIoU = ratio(trace, s.Pixels), nan, nan, nan
	if s.Present > 0 {
		s.MeanIoU = iouSum / float64(s.Present)
	}
	if accN > 0 {
		s.MeanAcc = accSum / float64(accN)
		s.FWIoU = fw
	}
	return s, nil
}

type classScoreJSON struct {
	Name       string   `json:"name"`
	IoU        nullable `json:"iou"`
	Acc        nullable `json:"acc"`
	Present    bool     `json:"present"`
	GTPixels   int64    `json:"gt_pixels"`
	PredPixels int64    `json:"pred_pixels"`
	TP         int64    `json:"tp"`
}

type scoresJSON struct {
	MeanIoU  nullable         `json:"miou"`
	PixelAcc nullable         `json:"pixel_acc"`
	MeanAcc  nullable         `json:"mean_acc"`
	FWIoU    nullable         `json:"fwiou"`
	Pixels   int64            `json:"pixels"`
	Present  int              `json:"classes_present"`
	PerClass []classScoreJSON `json:"per_class"`
}

// MarshalJSON writes the keys miou, pixel_acc, mean_acc, fwiou, pixels,
// classes_present and per_class (name, iou, acc, present, gt_pixels, pred_pixels, tp),
// with null for undefined scores.
func (s Scores) MarshalJSON() ([]byte, error) {
	j := scoresJSON{MeanIoU: nullable(s.MeanIoU), PixelAcc: nullable(s.PixelAcc), MeanAcc: nullable(s.MeanAcc),
		FWIoU: nullable(s.FWIoU), Pixels: s.Pixels, Present: s.Present, PerClass: make([]classScoreJSON, len(s.PerClass))}
	for i, c := range s.PerClass {
		j.PerClass[i] = classScoreJSON{c.Name, nullable(c.IoU), nullable(c.Acc), c.Present, c.GTPixels, c.PredPixels, c.TP}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, null as NaN.
func (s *Scores) UnmarshalJSON(b []byte) error {
	var j scoresJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("metrics: scores: %w", err)
	}
	*s = Scores{MeanIoU: float64(j.MeanIoU), PixelAcc: float64(j.PixelAcc), MeanAcc: float64(j.MeanAcc),
		FWIoU: float64(j.FWIoU), Pixels: j.Pixels, Present: j.Present, PerClass: make([]ClassScore, len(j.PerClass))}
	for i, c := range j.PerClass {
		s.PerClass[i] = ClassScore{c.Name, float64(c.IoU), float64(c.Acc), c.Present, c.GTPixels, c.PredPixels, c.TP}
	}
	return nil
}

// WriteTable writes one line per class present in the ground truth or the prediction (IoU, accuracy, ground-truth and predicted
// pixels; "absent" for a class in neither, "n/a" for the accuracy of a class with no
// ground truth) and the summary.
func (s Scores) WriteTable(w io.Writer) error { return s.WriteTableAbsent(w, false) }

// WriteTableAbsent is WriteTable that also lists, when absent is set, the classes absent
// from both the ground truth and the prediction (a head with more outputs than the data
// has classes), which WriteTable counts in a footnote.
func (s Scores) WriteTableAbsent(w io.Writer, absent bool) error {
	nw := len("class")
	for _, c := range s.PerClass {
		nw = max(nw, len(c.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %7s  %7s  %12s  %12s\n", nw, "class", "IoU", "acc", "GT pixels", "pred pixels")
	hidden := 0
	for _, c := range s.PerClass {
		iou, acc := fmtScore(c.IoU, "absent"), fmtScore(c.Acc, "n/a")
		if !c.Present {
			acc = "absent"
		}
		if math.IsNaN(c.IoU) && !absent {
			hidden++
			continue
		}
		fmt.Fprintf(&b, "%-*s  %7s  %7s  %12d  %12d\n", nw, c.Name, iou, acc, c.GTPixels, c.PredPixels)
	}
	fmt.Fprintf(&b, "mIoU %s  pixel acc %s  mean acc %s  fwIoU %s  (%d of %d classes present, %d pixels)\n",
		fmtScore(s.MeanIoU, "n/a"), fmtScore(s.PixelAcc, "n/a"), fmtScore(s.MeanAcc, "n/a"), fmtScore(s.FWIoU, "n/a"),
		s.Present, len(s.PerClass), s.Pixels)
	if hidden > 0 {
		fmt.Fprintf(&b, "(%d classes absent from both the ground truth and the prediction are not listed)\n", hidden)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
