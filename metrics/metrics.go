// Package metrics scores predictions in plain Go: a confusion matrix for semantic
// segmentation (pixel accuracy, mean class accuracy, per-class IoU, mIoU and
// frequency-weighted IoU), top-1/top-5 and per-class accuracy
// for classification, and the argmax/softmax helpers that turn logits into predictions.
//
// Scores that are undefined (a class absent from both ground truth and prediction, an
// empty evaluation) are NaN in Go, null in JSON and "absent" or "n/a" in tables; they are
// left out of every mean, never counted as 0 or 1.
package metrics

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/vggo/vggo/label"
)

func namesFor(classes int, names []string) ([]string, error) {
	if names == nil {
		return label.Names(classes, nil), nil
	}
	if len(names) != classes {
		return nil, fmt.Errorf("metrics: got %d class names for %d classes", len(names), classes)
	}
	return append([]string(nil), names...), nil
}

func ignoreOf(i int) int {
	if i == 0 {
		return label.Ignore
	}
	return i
}

// ratio returns a/b, or NaN when b is 0.
func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// nullable is a float64 that is null in JSON when NaN or infinite.
type nullable float64

func (f nullable) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func (f *nullable) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = nullable(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = nullable(v)
	return nil
}

// fmtScore formats a score in [0, 1] for a table, or undefined ("absent", "n/a") if NaN.
func fmtScore(v float64, undefined string) string {
	if math.IsNaN(v) {
		return undefined
	}
	return fmt.Sprintf("%.4f", v)
}
