package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func segRecord(epoch int) EpochRecord {
	e := float64(epoch)
	return EpochRecord{
		Epoch: epoch, Step: epoch * 183, LR: 0.01 * math.Pow(1-e/30, 0.9),
		TrainLoss: 1.5 / e, Seconds: 412.5, ImagesPerS: 3.56,
		ValLoss: new(1.7 / e), MIoU: new(0.6 - 0.5/e), PixelAcc: new(0.93 - 0.2/e),
		MeanAcc: new(0.72 - 0.5/e), FWIoU: new(0.87 - 0.3/e),
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), MetricsFile)
	want := []EpochRecord{
		segRecord(1),
		{Epoch: 2, Step: 366, LR: 0.009, TrainLoss: 0.7, Seconds: 400, ImagesPerS: 3.6}, // no evaluation
		{Epoch: 3, Step: 549, LR: 0.008, TrainLoss: 0.6, Top1: new(0.0), Top5: new(0.25)},
	}
	for _, r := range want {
		if err := AppendRecord(path, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadRecords(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), data)
	}
	if strings.Contains(lines[1], "miou") || strings.Contains(lines[1], "val_loss") {
		t.Errorf("epoch without evaluation has validation keys: %s", lines[1])
	}
	if !strings.Contains(lines[2], `"top1":0`) {
		t.Errorf("a zero top1 must be written, not omitted: %s", lines[2])
	}
}

func TestReadRecordsMalformed(t *testing.T) {
	good := `{"epoch":1,"step":10,"lr":0.1,"train_loss":2,"seconds":1,"images_per_s":5}`
	tests := []struct {
		name     string
		content  string
		wantLine int // 0: no error
		wantN    int
	}{
		{"valid", good + "\n" + good + "\n", 0, 2},
		{"blank lines skipped", "\n" + good + "\n\n" + good + "\n", 0, 2},
		{"crlf", good + "\r\n" + good + "\r\n", 0, 2},
		{"torn final line ignored", good + "\n" + good[:30], 0, 1},
		{"unterminated valid final line kept", good + "\n" + good, 0, 2},
		{"malformed middle line", good + "\n{\"epoch\":2,\n" + good + "\n", 2, 0},
		{"malformed terminated final line", good + "\n" + good[:30] + "\n", 2, 0},
		{"not an object", good + "\n[1,2]\n", 2, 0},
		{"null", "null\n", 1, 0},
		{"wrong type", `{"epoch":"one"}` + "\n", 1, 0},
		{"trailing garbage", good + " x\n", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), MetricsFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			recs, err := ReadRecords(path)
			if tt.wantLine == 0 {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if len(recs) != tt.wantN {
					t.Errorf("got %d records, want %d", len(recs), tt.wantN)
				}
				return
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got error %v, want a *LineError", err)
			}
			if le.Path != path || le.Line != tt.wantLine {
				t.Errorf("got %s:%d, want %s:%d", le.Path, le.Line, path, tt.wantLine)
			}
			msg := err.Error()
			if wantPrefix := fmt.Sprintf("report: %s:%d: malformed record", path, tt.wantLine); !strings.HasPrefix(msg, wantPrefix) {
				t.Errorf("got %q, want prefix %q", msg, wantPrefix)
			}
		})
	}
}

func TestReadRecordsMissing(t *testing.T) {
	_, err := ReadRecords(filepath.Join(t.TempDir(), MetricsFile))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "report: ") {
		t.Errorf("got %v, want a report: error wrapping fs.ErrNotExist", err)
	}
}

// A crash mid-write leaves a torn last line; the next append must drop it,
// or the file would hold a malformed terminated line forever.
func TestAppendRepairsTornTail(t *testing.T) {
	good := `{"epoch":1,"step":10,"lr":0.1,"train_loss":2,"seconds":1,"images_per_s":5}`
	tests := []struct {
		name   string
		before string
		want   []int // epochs after appending epoch 9
	}{
		{"torn tail dropped", good + "\n" + good[:25], []int{1, 9}},
		{"torn only line dropped", good[:25], []int{9}},
		{"valid unterminated tail kept", good, []int{1, 9}},
		{"terminated file untouched", good + "\n", []int{1, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), MetricsFile)
			if err := os.WriteFile(path, []byte(tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := AppendRecord(path, EpochRecord{Epoch: 9}); err != nil {
				t.Fatal(err)
			}
			recs, err := ReadRecords(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, r := range recs {
				got = append(got, r.Epoch)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got epochs %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAppendRecordRejectsNonFinite(t *testing.T) {
	path := filepath.Join(t.TempDir(), MetricsFile)
	tests := []struct {
		name  string
		r     EpochRecord
		field string
	}{
		{"nan loss", EpochRecord{Epoch: 4, TrainLoss: math.NaN()}, "train_loss is NaN"},
		{"inf lr", EpochRecord{Epoch: 4, LR: math.Inf(1)}, "lr is +Inf"},
		{"nan miou", EpochRecord{Epoch: 4, MIoU: new(math.NaN())}, "miou is NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AppendRecord(path, tt.r)
			if err == nil || !strings.HasPrefix(err.Error(), "report: ") || !strings.Contains(err.Error(), "epoch 4: "+tt.field) {
				t.Errorf("got %v, want an error naming epoch 4 and %q", err, tt.field)
			}
		})
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rejected records created the file (stat: %v)", err)
	}
}

func TestOptional(t *testing.T) {
	if Optional(math.NaN()) != nil || Optional(math.Inf(-1)) != nil {
		t.Error("Optional(non-finite) is not nil")
	}
	if p := Optional(0.25); p == nil || *p != 0.25 {
		t.Errorf("Optional(0.25) = %v, want pointer to 0.25", p)
	}
}

func TestBestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), BestFile)
	want := Best{Epoch: 7, Step: 1281, Metric: "miou", Value: 0.6123, PerClass: []ClassIoU{
		{Name: "background", IoU: new(0.91), Acc: new(0.96)},
		{Name: "aeroplane", IoU: new(0.0), Acc: new(0.0)},
		{Name: "bicycle"}, // absent
	}}
	if err := WriteBest(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBest(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"iou": null`) {
		t.Errorf("absent class IoU is not null:\n%s", data)
	}

	// Overwrite: no temporary files are left behind.
	want.Epoch, want.PerClass = 8, nil
	if err := WriteBest(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err = ReadBest(path); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after overwrite got %+v, %v, want %+v", got, err, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("got %d files in the directory, want only %s", len(entries), BestFile)
	}
}

func TestBestErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		b    Best
		want string
	}{
		{"no metric", Best{Value: 0.5}, "metric is empty"},
		{"nan value", Best{Metric: "miou", Value: math.NaN()}, "value is NaN"},
		{"nan class", Best{Metric: "miou", PerClass: []ClassIoU{{Name: "cat", IoU: new(math.NaN())}}}, `per_class "cat" iou is NaN`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, BestFile)
			err := WriteBest(path, tt.b)
			if err == nil || !strings.HasPrefix(err.Error(), "report: write "+path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := WriteBest(filepath.Join(dir, "no-such-dir", BestFile), Best{Metric: "top1"}); err == nil {
		t.Error("WriteBest into a missing directory succeeded")
	}

	if _, err := ReadBest(filepath.Join(dir, BestFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadBest of a missing file: got %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"epoch": 3,`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBest(bad); err == nil || !strings.Contains(err.Error(), "report: "+bad+": malformed") {
		t.Errorf("ReadBest of a malformed file: got %v, want an error naming it", err)
	}
}

func TestTruncateRecords(t *testing.T) {
	line := func(r EpochRecord) string {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	r1, r2, r3 := line(segRecord(1)), line(segRecord(2)), line(segRecord(3))
	r2b := line(EpochRecord{Epoch: 2, Step: 366, LR: 0.5}) // epoch 2 again, after a resume
	for _, c := range []struct {
		name      string
		file      string
		lastEpoch int
		want      string
		dropped   int
	}{
		{"killed after the record, before the checkpoint", r1 + r2 + r3, 2, r1 + r2, 1},
		{"consistent already", r1 + r2, 2, r1 + r2, 0},
		{"torn last line", r1 + r2 + `{"epoch":3,"st`, 2, r1 + r2, 0},
		{"torn line and a record to drop", r1 + r3 + `{"epo`, 1, r1, 1},
		{"repeated epoch: the last one stays", r1 + r2 + r2b + r3, 3, r1 + r2b + r3, 1},
		{"no epoch kept", r1 + r2, 0, "", 2},
		{"blank lines", r1 + "\n" + r2 + "\n", 1, r1, 1},
		{"empty", "", 3, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), MetricsFile)
			os.WriteFile(path, []byte(c.file), 0o644)
			dropped, err := TruncateRecords(path, c.lastEpoch)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != c.want || dropped != c.dropped {
				t.Errorf("got %d dropped and\n%s\nwant %d and\n%s", dropped, got, c.dropped, c.want)
			}
			if names, _ := os.ReadDir(filepath.Dir(path)); len(names) != 1 {
				t.Errorf("left %d files, want only %s", len(names), MetricsFile)
			}
		})
	}

	// The sequence: epoch 3's record is appended, the process is killed before
	// the epoch-3 checkpoint, the run resumes from epoch 2 and writes epoch 3 again.
	path := filepath.Join(t.TempDir(), MetricsFile)
	for e := 1; e <= 3; e++ {
		if err := AppendRecord(path, segRecord(e)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := TruncateRecords(path, 2); err != nil {
		t.Fatal(err)
	}
	if err := AppendRecord(path, segRecord(3)); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadRecords(path)
	if err != nil || len(recs) != 3 || recs[0].Epoch != 1 || recs[1].Epoch != 2 || recs[2].Epoch != 3 {
		t.Errorf("after resume: got %+v, %v; want epochs 1, 2, 3 once each", recs, err)
	}
}

func TestTruncateRecordsErrors(t *testing.T) {
	dir := t.TempDir()
	if n, err := TruncateRecords(filepath.Join(dir, "missing.jsonl"), 3); n != 0 || err != nil {
		t.Errorf("missing file: got %d, %v; want nothing done", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.jsonl")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file was created: %v", err)
	}
	path := filepath.Join(dir, MetricsFile)
	bad := `{"epoch":1}` + "\nnot json\n" + `{"epoch":2}` + "\n"
	os.WriteFile(path, []byte(bad), 0o644)
	_, err := TruncateRecords(path, 1)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || le.Path != path {
		t.Errorf("malformed line: got %v, want a *LineError for line 2", err)
	}
	if got, _ := os.ReadFile(path); string(got) != bad {
		t.Errorf("a malformed file was rewritten: %q", got)
	}
	if _, err := TruncateRecords(dir, 1); err == nil {
		t.Error("a directory: no error")
	}
}
