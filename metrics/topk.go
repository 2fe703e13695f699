package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
)

// TopK accumulates classification accuracy: top-1, top-5 and per-class (top-1)
// accuracy. A sample is a top-k hit when its label's logit is among the k largest; ties
// go to the lower class index, as in Argmax. With fewer than 5 classes, top-5 counts
// every sample as a hit. Merge combines accumulators of parts of a set.
type TopK struct {
	Classes      int     `json:"classes"`
	Samples      int64   `json:"samples"`
	Top1Hits     int64   `json:"top1_hits"`
	Top5Hits     int64   `json:"top5_hits"`
	ClassSamples []int64 `json:"class_samples"` // per label
	ClassHits    []int64 `json:"class_hits"`    // top-1 hits per label
}

// NewTopK returns an empty accumulator over classes classes. It panics if classes < 1.
func NewTopK(classes int) *TopK {
	if classes < 1 {
		panic(fmt.Sprintf("metrics: NewTopK(%d): need at least one class", classes))
	}
	return &TopK{Classes: classes, ClassSamples: make([]int64, classes), ClassHits: make([]int64, classes)}
}

func (t *TopK) check() error {
	if t.Classes < 1 || len(t.ClassSamples) != t.Classes || len(t.ClassHits) != t.Classes {
		return fmt.Errorf("metrics: invalid top-k accumulator: %d classes, %d/%d per-class counts (use NewTopK)",
			t.Classes, len(t.ClassSamples), len(t.ClassHits))
	}
	return nil
}

// Add scores a batch of logits (or probabilities), n rows of c values, against n
// labels in [0, c). A shape mismatch or an out-of-range label is an error, and then
// nothing is counted. A NaN logit for the label is a miss.
func (t *TopK) Add(logits []float32, n, c int, labels []int) error {
	if err := t.check(); err != nil {
		return err
	}
	if c != t.Classes {
		return fmt.Errorf("metrics: logits have %d classes, accumulator %d", c, t.Classes)
	}
	if n < 0 || len(logits) != n*c || len(labels) != n {
		return fmt.Errorf("metrics: got %d logits and %d labels, want %d×%d = %d logits and %d labels",
			len(logits), len(labels), n, c, n*c, n)
	}
	for i, y := range labels {
		if y < 0 || y >= c {
			return fmt.Errorf("metrics: label %d of sample %d is out of range [0, %d)", y, i, c)
		}
	}
	for i, y := range labels {
		r := rank(logits[i*c:(i+1)*c], y)
		t.Samples++
		t.ClassSamples[y]++
		if r < 1 {
			t.Top1Hits++
			t.ClassHits[y]++
		}
		if r < 5 {
			t.Top5Hits++
		}
	}
	return nil
}

// rank is the number of classes placed before y: a larger value, or an equal one at a
// lower index. A NaN at y ranks last.
func rank(row []float32, y int) int {
	v := row[y]
	if v != v {
		return len(row)
	}
	r := 0
	for j, u := range row {
		if u > v || (u == v && j < y) {
			r++
		}
	}
	return r
}

// Merge adds other's counts to t. Both must have the same number of classes.
func (t *TopK) Merge(other *TopK) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := other.check(); err != nil {
		return err
	}
	if other.Classes != t.Classes {
		return fmt.Errorf("metrics: cannot merge top-k of %d classes into one of %d", other.Classes, t.Classes)
	}
	t.Samples += other.Samples
	t.Top1Hits += other.Top1Hits
	t.Top5Hits += other.Top5Hits
	for i := range t.ClassSamples {
		t.ClassSamples[i] += other.ClassSamples[i]
		t.ClassHits[i] += other.ClassHits[i]
	}
	return nil
}

// Reset sets every count to 0.
func (t *TopK) Reset() {
	t.Samples, t.Top1Hits, t.Top5Hits = 0, 0, 0
	clear(t.ClassSamples)
	clear(t.ClassHits)
}

// ClassAccuracy is one class's line of ClassificationScores.
type ClassAccuracy struct {
	Name    string
	Acc     float64 // top-1 hits / samples of this label; NaN with no samples
	Samples int64
	Hits    int64
}

// ClassificationScores are the metrics of a TopK; the rates are NaN with no samples.
type ClassificationScores struct {
	Top1, Top5 float64
	// MeanAcc is the mean of Acc over the classes that have samples.
	MeanAcc  float64
	Samples  int64
	PerClass []ClassAccuracy
}

// Scores computes the metrics, naming classes with label.Names: class0, class1, ..., or
// the VOC names for 21 classes.
func (t *TopK) Scores() ClassificationScores {
	s, err := t.ScoresNamed(nil)
	if err != nil {
		nan := math.NaN()
		return ClassificationScores{Top1: nan, Top5: nan, MeanAcc: nan}
	}
	return s
}

// ScoresNamed computes the metrics with the given class names (nil: label.Names).
func (t *TopK) ScoresNamed(names []string) (ClassificationScores, error) {
	if err := t.check(); err != nil {
		return ClassificationScores{}, err
	}
	names, err := namesFor(t.Classes, names)
	if err != nil {
		return ClassificationScores{}, err
	}
	s := ClassificationScores{Top1: ratio(t.Top1Hits, t.Samples), Top5: ratio(t.Top5Hits, t.Samples),
		MeanAcc: math.NaN(), Samples: t.Samples, PerClass: make([]ClassAccuracy, t.Classes)}
	var sum float64
	var k int
	for i := range t.Classes {
		a := ClassAccuracy{Name: names[i], Acc: ratio(t.ClassHits[i], t.ClassSamples[i]), Samples: t.ClassSamples[i], Hits: t.ClassHits[i]}
		if a.Samples > 0 {
			sum += a.Acc
			k++
		}
		s.PerClass[i] = a
	}
	if k > 0 {
		s.MeanAcc = sum / float64(k)
	}
	return s, nil
}

type classAccJSON struct {
	Name    string   `json:"name"`
	Acc     nullable `json:"acc"`
	Samples int64    `json:"samples"`
	Hits    int64    `json:"hits"`
}

type classificationJSON struct {
	Top1     nullable       `json:"top1"`
	Top5     nullable       `json:"top5"`
	MeanAcc  nullable       `json:"mean_acc"`
	Samples  int64          `json:"samples"`
	PerClass []classAccJSON `json:"per_class"`
}

// MarshalJSON writes the keys top1, top5, mean_acc, samples and per_class (name, acc,
// samples, hits), with null for undefined rates.
func (s ClassificationScores) MarshalJSON() ([]byte, error) {
	j := classificationJSON{Top1: nullable(s.Top1), Top5: nullable(s.Top5), MeanAcc: nullable(s.MeanAcc),
		Samples: s.Samples, PerClass: make([]classAccJSON, len(s.PerClass))}
	for i, c := range s.PerClass {
		j.PerClass[i] = classAccJSON{c.Name, nullable(c.Acc), c.Samples, c.Hits}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, null as NaN.
func (s *ClassificationScores) UnmarshalJSON(b []byte) error {
	var j classificationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("metrics: classification scores: %w", err)
	}
	*s = ClassificationScores{Top1: float64(j.Top1), Top5: float64(j.Top5), MeanAcc: float64(j.MeanAcc),
		Samples: j.Samples, PerClass: make([]ClassAccuracy, len(j.PerClass))}
	for i, c := range j.PerClass {
		s.PerClass[i] = ClassAccuracy{c.Name, float64(c.Acc), c.Samples, c.Hits}
	}
	return nil
}

// WriteTable writes one line per class (accuracy, "n/a" without samples) and the
// summary.
func (s ClassificationScores) WriteTable(w io.Writer) error {
	nw := len("class")
	for _, c := range s.PerClass {
		nw = max(nw, len(c.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %7s  %10s\n", nw, "class", "acc", "samples")
	for _, c := range s.PerClass {
		fmt.Fprintf(&b, "%-*s  %7s  %10d\n", nw, c.Name, fmtScore(c.Acc, "n/a"), c.Samples)
	}
	fmt.Fprintf(&b, "top-1 %s  top-5 %s  mean class acc %s  (%d samples)\n",
		fmtScore(s.Top1, "n/a"), fmtScore(s.Top5, "n/a"), fmtScore(s.MeanAcc, "n/a"), s.Samples)
	_, err := io.WriteString(w, b.String())
	return err
}
