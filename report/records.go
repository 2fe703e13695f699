package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
)

// EpochRecord is one line of metrics.jsonl: what happened in one epoch.
//
// Validation fields are pointers: nil means "not evaluated this epoch" and is
// omitted from the JSON, so a real score of 0 stays distinct from a missing
// one. Scores are fractions in [0, 1]. With Go 1.26, set one as
// MIoU: new(cm.MeanIoU()), or use [Optional] to map NaN to nil.
type EpochRecord struct {
	Epoch      int     `json:"epoch"`
	Step       int     `json:"step"`         // global step at the end of the epoch
	LR         float64 `json:"lr"`           // learning rate at the end of the epoch
	TrainLoss  float64 `json:"train_loss"`   // mean training loss over the epoch
	Seconds    float64 `json:"seconds"`      // wall time of the epoch
	ImagesPerS float64 `json:"images_per_s"` // training throughput
	// AllreduceMS is the mean time per step rank 0 spent in the gradient allreduce
	// (data-parallel runs only).
	AllreduceMS float64 `json:"allreduce_ms_per_step,omitempty"`
	// GradNorm is the mean global L2 norm of the gradients before clipping (runs with
	// gradient clipping only).
	GradNorm *float64 `json:"grad_norm,omitempty"`

	ValLoss *float64 `json:"val_loss,omitempty"`

	// Segmentation.
	MIoU     *float64 `json:"miou,omitempty"`
	PixelAcc *float64 `json:"pixel_acc,omitempty"`
	MeanAcc  *float64 `json:"mean_acc,omitempty"`
	FWIoU    *float64 `json:"fwiou,omitempty"`

	// Classification.
	Top1 *float64 `json:"top1,omitempty"`
	Top5 *float64 `json:"top5,omitempty"`
}

// WithoutTimings returns r with its wall-clock fields (Seconds, ImagesPerS, AllreduceMS)
// zeroed: what two runs of the same computation agree on.
func (r EpochRecord) WithoutTimings() EpochRecord {
	r.Seconds, r.ImagesPerS, r.AllreduceMS = 0, 0, 0
	return r
}

// Optional returns &v, or nil when v is NaN or ±Inf. JSON has no NaN, so
// this is how a metric that is undefined (a class absent from the
// validation set, say) is stored in an [EpochRecord] or a [ClassIoU].
func Optional(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// validate reports the first field that JSON cannot hold.
func (r EpochRecord) validate() error {
	for _, f := range []struct {
		name string
		v    *float64
	}{
		{"lr", &r.LR}, {"train_loss", &r.TrainLoss}, {"seconds", &r.Seconds},
		{"images_per_s", &r.ImagesPerS}, {"grad_norm", r.GradNorm}, {"val_loss", r.ValLoss},
		{"miou", r.MIoU}, {"pixel_acc", r.PixelAcc}, {"mean_acc", r.MeanAcc},
		{"fwiou", r.FWIoU}, {"top1", r.Top1}, {"top5", r.Top5},
	} {
		if err := checkFinite(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

func checkFinite(name string, v *float64) error {
	if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
		return fmt.Errorf("%s is %v, which JSON cannot hold (store nil for a missing optional value, see report.Optional)", name, *v)
	}
	return nil
}

// A LineError reports a malformed line in a metrics file.
type LineError struct {
	Path string
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("report: %s:%d: malformed record: %v", e.Path, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// AppendRecord appends r as one JSON line to the metrics file at path,
// creating the file if needed, and syncs it to disk before returning.
//
// If the file ends in an unterminated line that is not a valid record (a
// write cut short by a crash, which [ReadRecords] ignores), AppendRecord
// first truncates that line away so the file stays readable. A valid
// unterminated line (a hand-edited file) is kept and terminated.
//
// Non-finite values are rejected: JSON has no NaN or Inf. AppendRecord is
// meant for a single writer per file.
func AppendRecord(path string, r EpochRecord) (err error) {
	if err := r.validate(); err != nil {
		return fmt.Errorf("report: append to %s: epoch %d: %w", path, r.Epoch, err)
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("report: append to %s: %w", path, err)
	}
	line = append(line, '\n')

	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("report: %w", cerr)
		}
	}()
	if err := repairTail(f); err != nil {
		return fmt.Errorf("report: append to %s: %w", path, err)
	}
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// repairTail makes f end in a newline (or be empty) before an append. An
// unterminated last line is terminated if it parses and truncated otherwise.
func repairTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	// Rare (only after a crash or a hand edit): read the file to find the
	// start of the last line. Metrics files are small.
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	start := bytes.LastIndexByte(data, '\n') + 1
	tail := bytes.TrimSpace(data[start:])
	if len(tail) > 0 {
		if _, err := parseRecord(tail); err == nil {
			_, err := f.Write([]byte{'\n'})
			return err
		}
	}
	return f.Truncate(int64(start))
}

// ReadRecords reads every record of the metrics file at path, in file order.
// Blank lines are skipped.
//
// A malformed line is a *[LineError] naming the file and the 1-based line.
// One exception: if the file's last line has no terminating newline and does
// not parse, it is taken to be a write cut short by a crash and is ignored.
// A malformed line that is newline-terminated, or followed by other lines,
// is always an error.
//
// A resumed run may repeat epochs; the records are returned as written
// ([WriteCharts] keeps the last record of each epoch).
func ReadRecords(path string) ([]EpochRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	lines := bytes.Split(data, []byte{'\n'})
	var recs []EpochRecord
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		r, err := parseRecord(line)
		if err != nil {
			if i == len(lines)-1 { // unterminated final line: a torn write
				break
			}
			return nil, &LineError{Path: path, Line: i + 1, Err: err}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// parseRecord decodes one JSON object.
func parseRecord(line []byte) (EpochRecord, error) {
	var r EpochRecord
	if line[0] != '{' {
		return r, fmt.Errorf("want a JSON object, got %q", truncate(line, 40))
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, err
	}
	return r, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// TruncateRecords makes the metrics file at path agree with a checkpoint that holds
// the state at the end of epoch lastEpoch, before a resumed run appends to it. It
// keeps the records with Epoch <= lastEpoch, one per epoch (the last written: an
// earlier run may have repeated epochs), in file order, and drops the rest: records
// that a run appended after its last checkpoint and before it was killed, which the
// resumed run is about to write again, and a torn last line. Kept lines are copied
// byte for byte. The file is rewritten atomically, and only when something is
// dropped; a missing file is left missing. dropped counts the records removed (a torn
// line is not counted). A malformed line other than a torn last one is a *LineError,
// and the file is left as it was.
func TruncateRecords(path string, lastEpoch int) (dropped int, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("report: %w", err)
	}
	type kept struct{ line []byte }
	var keep []kept
	last := map[int]int{} // epoch -> index in keep of its latest record
	torn := false
	lines := bytes.Split(data, []byte{'\n'})
	for i, raw := range lines {
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		r, err := parseRecord(line)
		if err != nil {
			if i == len(lines)-1 { // unterminated final line: a torn write
				torn = true
				break
			}
			return 0, &LineError{Path: path, Line: i + 1, Err: err}
		}
		if r.Epoch > lastEpoch {
			dropped++
			continue
		}
		if j, ok := last[r.Epoch]; ok {
			keep[j].line = nil // superseded by this one
			dropped++
		}
		last[r.Epoch] = len(keep)
		keep = append(keep, kept{line: line})
	}
	if dropped == 0 && !torn {
		return 0, nil
	}
	err = WriteFileAtomic(path, func(w io.Writer) error {
		for _, k := range keep {
			if k.line == nil {
				continue
			}
			if _, err := w.Write(k.line); err != nil {
				return err
			}
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("report: rewrite %s: %w", path, err)
	}
	return dropped, nil
}
