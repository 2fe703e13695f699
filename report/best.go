package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Best is best.json: the best checkpoint of a run so far.
type Best struct {
	Epoch    int        `json:"epoch"`
	Step     int        `json:"step"`
	Metric   string     `json:"metric"` // the EpochRecord JSON key it was chosen by: "miou", "top1", ...
	Value    float64    `json:"value"`
	PerClass []ClassIoU `json:"per_class,omitempty"`
}

// ClassIoU holds one class's scores at the best checkpoint. IoU and Acc are
// nil (JSON null) when the class is absent from the validation set.
type ClassIoU struct {
	Name string   `json:"name"`
	IoU  *float64 `json:"iou"`
	Acc  *float64 `json:"acc"`
}

func (b Best) validate() error {
	if b.Metric == "" {
		return errors.New(`metric is empty (want the EpochRecord key it was chosen by, e.g. "miou" or "top1")`)
	}
	if err := checkFinite("value", &b.Value); err != nil {
		return err
	}
	for _, c := range b.PerClass {
		if err := checkFinite(fmt.Sprintf("per_class %q iou", c.Name), c.IoU); err != nil {
			return err
		}
		if err := checkFinite(fmt.Sprintf("per_class %q acc", c.Name), c.Acc); err != nil {
			return err
		}
	}
	return nil
}

// WriteBest writes b to path atomically: a reader sees the old file or the
// new one, never a partial write.
func WriteBest(path string, b Best) error {
	if err := b.validate(); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	data = append(data, '\n')
	err = WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// ReadBest reads best.json at path. A missing file is an error wrapping
// [io/fs.ErrNotExist].
func ReadBest(path string) (Best, error) {
	var b Best
	data, err := os.ReadFile(path)
	if err != nil {
		return b, fmt.Errorf("report: %w", err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return Best{}, fmt.Errorf("report: %s: malformed best checkpoint record: %w", path, err)
	}
	return b, nil
}
