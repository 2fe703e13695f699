package report

import (
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/plot"
)

var vocClasses = []string{
	"background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
	"cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
	"pottedplant", "sheep", "sofa", "train", "tvmonitor",
}

// newRun writes a run directory with the given records and, if best is not
// nil, best.json.
func newRun(t *testing.T, recs []EpochRecord, best *Best) string {
	t.Helper()
	dir := t.TempDir()
	for _, r := range recs {
		if err := AppendRecord(filepath.Join(dir, MetricsFile), r); err != nil {
			t.Fatal(err)
		}
	}
	if best != nil {
		if err := WriteBest(filepath.Join(dir, BestFile), *best); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func segRun(epochs int) ([]EpochRecord, *Best) {
	var recs []EpochRecord
	for e := 1; e <= epochs; e++ {
		r := segRecord(e)
		if e%2 == 0 && e != epochs { // evaluate on odd epochs and the last
			r.ValLoss, r.MIoU, r.PixelAcc, r.MeanAcc, r.FWIoU = nil, nil, nil, nil, nil
		}
		recs = append(recs, r)
	}
	last := recs[len(recs)-1]
	best := &Best{Epoch: last.Epoch, Step: last.Step, Metric: "miou", Value: *last.MIoU}
	for i, name := range vocClasses {
		c := ClassIoU{Name: name, IoU: new(0.35 + 0.6*float64((i*7)%21)/21), Acc: new(0.5 + 0.5*float64((i*5)%21)/21)}
		if name == "bicycle" || name == "sofa" {
			c = ClassIoU{Name: name} // absent from the validation set
		}
		best.PerClass = append(best.PerClass, c)
	}
	return recs, best
}

func clsRun(epochs int) ([]EpochRecord, *Best) {
	var recs []EpochRecord
	lr := 0.1
	for e := 1; e <= epochs; e++ {
		if e%10 == 0 {
			lr /= 10 // step schedule: the LR chart goes log scale
		}
		f := float64(e) / float64(epochs)
		recs = append(recs, EpochRecord{
			Epoch: e, Step: e * 5004, LR: lr, TrainLoss: 6.9 - 5*f, Seconds: 1800, ImagesPerS: 710,
			ValLoss: new(6.8 - 4.8*f), Top1: new(0.7 * f), Top5: new(0.9 * f),
		})
	}
	last := recs[len(recs)-1]
	return recs, &Best{Epoch: last.Epoch, Step: last.Step, Metric: "top1", Value: *last.Top1}
}

func TestWriteCharts(t *testing.T) {
	seg, segBest := segRun(12)
	seg1, seg1Best := segRun(1)
	cls, clsBest := clsRun(30)
	tests := []struct {
		name string
		recs []EpochRecord
		best *Best
		want []string
	}{
		{"segmentation", seg, segBest, []string{LossChart, LRChart, ValChart, PerClassChart}},
		{"segmentation one epoch", seg1, seg1Best, []string{LossChart, LRChart, ValChart, PerClassChart}},
		{"segmentation without best.json", seg, nil, []string{LossChart, LRChart, ValChart}},
		{"classification", cls, clsBest, []string{LossChart, LRChart, ValChart}},
		{"no evaluation yet", []EpochRecord{{Epoch: 1, Step: 5, LR: 0.01, TrainLoss: 2.3}}, nil, []string{LossChart, LRChart}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newRun(t, tt.recs, tt.best)
			got, err := WriteCharts(dir)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range tt.want {
				want = append(want, filepath.Join(dir, f))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			for _, path := range got {
				checkPNG(t, path, 1200, 600)
			}
			keepCharts(t, got)
		})
	}
}

// keepCharts copies charts to $REPORT_KEEP/<test name>/ so that a person can
// look at them: REPORT_KEEP=/tmp/charts go test ./report/
func keepCharts(t *testing.T, paths []string) {
	root := os.Getenv("REPORT_KEEP")
	if root == "" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if cfg.Width != w || cfg.Height != h {
		t.Errorf("%s: got %dx%d, want %dx%d", filepath.Base(path), cfg.Width, cfg.Height, w, h)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// Not blank: some pixel differs from the white background.
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r != 0xffff || g != 0xffff || bl != 0xffff {
				return
			}
		}
	}
	t.Errorf("%s is blank", path)
}

// Many classes widen the per-class chart rather than crowd it.
func TestWriteChartsWidePerClass(t *testing.T) {
	t.Parallel()
	recs, best := segRun(3)
	best.PerClass = nil
	for i := range 60 {
		best.PerClass = append(best.PerClass, ClassIoU{Name: fmt.Sprintf("class%02d", i), IoU: new(float64(i) / 60)})
	}
	dir := newRun(t, recs, best)
	got, err := WriteCharts(dir)
	if err != nil {
		t.Fatal(err)
	}
	keepCharts(t, got)
	// 60 × 0.3 in + 1.3 in = 19.3 in at 150 dpi.
	checkPNG(t, filepath.Join(dir, PerClassChart), 2895, 600)
}

// A resumed run repeats epochs; the last record of each wins.
func TestLastPerEpoch(t *testing.T) {
	in := []EpochRecord{{Epoch: 1, Step: 1}, {Epoch: 2, Step: 2}, {Epoch: 3, Step: 3}, {Epoch: 2, Step: 20}, {Epoch: 3, Step: 30}, {Epoch: 4, Step: 40}}
	want := []EpochRecord{{Epoch: 1, Step: 1}, {Epoch: 2, Step: 20}, {Epoch: 3, Step: 30}, {Epoch: 4, Step: 40}}
	if got := lastPerEpoch(in); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name   string
		ticker plot.Ticker
		lo, hi float64
		want   []string
	}{
		{"one epoch", epochTicks, 0, 2, []string{"0", "1", "2"}},
		{"12 epochs", epochTicks, 1, 12, []string{"2", "4", "6", "8", "10", "12"}},
		{"30 epochs", epochTicks, 1, 30, []string{"5", "10", "15", "20", "25", "30"}},
		{"300 epochs", epochTicks, 0, 300, []string{"0", "50", "100", "150", "200", "250", "300"}},
		{"scores", valueTicks, 0.05, 0.93, []string{"0.2", "0.4", "0.6", "0.8"}},
		{"small lr", valueTicks, 0.0062, 0.0098, []string{"0.0065", "0.0070", "0.0075", "0.0080", "0.0085", "0.0090", "0.0095"}},
		{"step 2.5", valueTicks, -0.1, 1.6, []string{"0.00", "0.25", "0.50", "0.75", "1.00", "1.25", "1.50"}},
		{"log", logTicks{}, 1e-4, 0.1, []string{"0.0001", "", "", "", "", "", "", "", "", "0.001", "", "", "", "", "", "", "", "", "0.01", "", "", "", "", "", "", "", "", "0.1"}},
		{"log within decades", logTicks{}, 3e-4, 0.05, []string{"", "", "", "", "", "", "", "0.001", "", "", "", "", "", "", "", "", "0.01", "", "", "", ""}},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range tt.ticker.Ticks(tt.lo, tt.hi) {
			got = append(got, tk.Label)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Ticks(%v, %v) = %q, want %q", tt.name, tt.lo, tt.hi, got, tt.want)
		}
	}
}

func TestWriteChartsErrors(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		_, err := WriteCharts(dir)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "report: run directory "+dir+" does not exist") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("not a run directory", func(t *testing.T) {
		dir := t.TempDir()
		_, err := WriteCharts(dir)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "has no metrics.jsonl (is it a vggo run directory?)") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), MetricsFile)
		os.WriteFile(path, nil, 0o644)
		if _, err := WriteCharts(path); err == nil || !strings.Contains(err.Error(), "is not a directory") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no records", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, MetricsFile), []byte("\n"), 0o644)
		if _, err := WriteCharts(dir); err == nil || !strings.Contains(err.Error(), "has no records yet") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("malformed metrics", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, MetricsFile), []byte("{\n{}\n"), 0o644)
		var le *LineError
		if _, err := WriteCharts(dir); !errors.As(err, &le) || le.Line != 1 {
			t.Errorf("got %v, want a *LineError for line 1", err)
		}
	})
	t.Run("malformed best.json", func(t *testing.T) {
		recs, _ := segRun(3)
		dir := newRun(t, recs, nil)
		os.WriteFile(filepath.Join(dir, BestFile), []byte("{"), 0o644)
		got, err := WriteCharts(dir)
		if err == nil || !strings.Contains(err.Error(), "best.json: malformed") {
			t.Errorf("got %v, want an error naming best.json", err)
		}
		if len(got) != 3 { // loss, lr and val are still written
			t.Errorf("got %v, want the three charts that do not need best.json", got)
		}
	})
}
