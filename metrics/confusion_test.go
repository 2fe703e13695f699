package metrics

import (
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vggo/vggo/label"
)

func near(got, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= 1e-7
}

func mustAdd(t *testing.T, m *ConfusionMatrix, pred, labels []int) {
	t.Helper()
	if err := m.Add(pred, labels); err != nil {
		t.Fatal(err)
	}
}

// TestScoresHandComputed checks the metrics against matrices worked out by hand.
func TestScoresHandComputed(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name         string
		classes      int
		pred, labels []int
		counts       []int64
		pixAcc, mAcc float64
		mIoU, fwIoU  float64
		iou, acc     []float64
		present      []bool
		nPresent     int
		pixels       int64
		gtPix, prPix []int64
	}{
		{
			// Two ignored pixels (one with an out-of-range prediction, which is not read).
			// Rows (GT) / columns (pred):  gt0: 3 1 0   gt1: 1 1 0   gt2: 0 1 0
			// GT = (4, 2, 1), pred = (4, 3, 0), total 7, trace 4.
			// IoU = 3/(4+4-3), 1/(2+3-1), 0/(1+0-0) = 0.6, 0.25, 0;  mIoU = 0.85/3
			// acc = 3/4, 1/2, 0/1;  mean acc = 1.25/3
			// fwIoU = (4·0.6 + 2·0.25 + 1·0)/7 = 2.9/7
			name: "three classes", classes: 3,
			labels: []int{0, 0, 0, 0, 1, 1, 2, 255, 255},
			pred:   []int{0, 0, 1, 0, 1, 0, 1, 2, 7},
			counts: []int64{3, 1, 0, 1, 1, 0, 0, 1, 0},
			pixAcc: 4.0 / 7, mAcc: 1.25 / 3, mIoU: 0.85 / 3, fwIoU: 2.9 / 7,
			iou: []float64{0.6, 0.25, 0}, acc: []float64{0.75, 0.5, 0},
			present: []bool{true, true, true}, nPresent: 3, pixels: 7,
			gtPix: []int64{4, 2, 1}, prPix: []int64{4, 3, 0},
		},
		{
			// Class 3 is in neither GT nor prediction: absent, left out of every mean.
			// Class 4 is only predicted: IoU 0 (in mIoU), no accuracy (not in mean acc).
			// gt0: pred0 1, pred4 1; gt1: pred1 1; gt2: pred2 1, pred1 1.
			// GT = (2,1,2,0,0), pred = (1,2,1,0,1), total 5, trace 3.
			// IoU = 1/2, 1/2, 1/2, absent, 0 → mIoU = 1.5/4 = 0.375
			// acc = 1/2, 1, 1/2 → mean acc = 2/3;  fwIoU = (2+1+2)/5·0.5 = 0.5
			name: "absent classes", classes: 5,
			labels: []int{0, 0, 1, 2, 2},
			pred:   []int{0, 4, 1, 2, 1},
			pixAcc: 0.6, mAcc: 2.0 / 3, mIoU: 0.375, fwIoU: 0.5,
			iou: []float64{0.5, 0.5, 0.5, nan, 0}, acc: []float64{0.5, 1, 0.5, nan, nan},
			present: []bool{true, true, true, false, true}, nPresent: 4, pixels: 5,
			gtPix: []int64{2, 1, 2, 0, 0}, prPix: []int64{1, 2, 1, 0, 1},
		},
		{
			// Nothing counted: every score undefined.
			name: "all ignored", classes: 2,
			labels: []int{255, 255}, pred: []int{0, 1},
			pixAcc: nan, mAcc: nan, mIoU: nan, fwIoU: nan,
			iou: []float64{nan, nan}, acc: []float64{nan, nan},
			present: []bool{false, false}, nPresent: 0, pixels: 0,
			gtPix: []int64{0, 0}, prPix: []int64{0, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewConfusionMatrix(tc.classes)
			mustAdd(t, m, tc.pred, tc.labels)
			if tc.counts != nil && !slices.Equal(m.Counts, tc.counts) {
				t.Errorf("counts = %v, want %v", m.Counts, tc.counts)
			}
			s := m.Scores()
			for _, f := range []struct {
				name      string
				got, want float64
			}{{"pixel acc", s.PixelAcc, tc.pixAcc}, {"mean acc", s.MeanAcc, tc.mAcc}, {"mIoU", s.MeanIoU, tc.mIoU}, {"fwIoU", s.FWIoU, tc.fwIoU}} {
				if !near(f.got, f.want) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if s.Present != tc.nPresent || s.Pixels != tc.pixels {
				t.Errorf("present %d pixels %d, want %d and %d", s.Present, s.Pixels, tc.nPresent, tc.pixels)
			}
			for i, c := range s.PerClass {
				if !near(c.IoU, tc.iou[i]) || !near(c.Acc, tc.acc[i]) || c.Present != tc.present[i] ||
					c.GTPixels != tc.gtPix[i] || c.PredPixels != tc.prPix[i] {
					t.Errorf("class %d = %+v, want IoU %v acc %v present %t GT %d pred %d",
						i, c, tc.iou[i], tc.acc[i], tc.present[i], tc.gtPix[i], tc.prPix[i])
				}
			}
		})
	}
}

func randSeg(r *rand.Rand, n, classes int, ignoreFrac float64) (pred, labels []int) {
	pred, labels = make([]int, n), make([]int, n)
	for i := range n {
		labels[i] = r.IntN(classes)
		if r.Float64() < ignoreFrac {
			labels[i] = 255
		}
		pred[i] = r.IntN(classes)
		if r.Float64() < 0.5 && labels[i] != 255 {
			pred[i] = labels[i]
		}
	}
	return pred, labels
}

func TestPerfectPrediction(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := NewConfusionMatrix(21)
	for range 4 {
		_, labels := randSeg(r, 1000, 21, 0.1)
		pred := slices.Clone(labels)
		for i, l := range labels {
			if l == 255 {
				pred[i] = r.IntN(21) // whatever is predicted under ignored pixels
			}
		}
		mustAdd(t, m, pred, labels)
	}
	s := m.Scores()
	if s.PixelAcc != 1 || s.MeanAcc != 1 || s.MeanIoU != 1 || !near(s.FWIoU, 1) {
		t.Errorf("perfect prediction: %+v", s)
	}
	if s.Present != 21 {
		t.Errorf("present %d, want 21", s.Present)
	}
}

// TestMergeEqualsAccumulate: matrices of parts, filled concurrently and merged, equal
// one matrix fed everything.
func TestMergeEqualsAccumulate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type batch struct{ pred, labels []int }
	batches := make([]batch, 12)
	all := NewConfusionMatrix(7)
	for i := range batches {
		p, l := randSeg(r, 500, 7, 0.15)
		batches[i] = batch{p, l}
		mustAdd(t, all, p, l)
	}
	parts := make([]*ConfusionMatrix, 3)
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for w := range parts {
		parts[w] = NewConfusionMatrix(7)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(batches); i += len(parts) {
				if err := parts[w].Add(batches[i].pred, batches[i].labels); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	merged := NewConfusionMatrix(7)
	for w, p := range parts {
		if errs[w] != nil {
			t.Fatal(errs[w])
		}
		if err := merged.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(merged.Counts, all.Counts) {
		t.Errorf("merged counts %v, accumulated %v", merged.Counts, all.Counts)
	}
	if a, b := merged.Scores(), all.Scores(); a.MeanIoU != b.MeanIoU || a.FWIoU != b.FWIoU {
		t.Errorf("merged mIoU %v fwIoU %v, accumulated %v %v", a.MeanIoU, a.FWIoU, b.MeanIoU, b.FWIoU)
	}
	merged.Reset()
	if merged.Total() != 0 {
		t.Errorf("after Reset total = %d", merged.Total())
	}
}

func TestAddRegion(t *testing.T) {
	// A 3x4 padded prediction and a 2x3 ground truth: only the top-left 2x3 is scored.
	pred := []int{
		0, 1, 1, 9,
		1, 1, 0, 9,
		9, 9, 9, 9,
	}
	labels := []int{
		0, 1, 255,
		1, 0, 0,
	}
	m := NewConfusionMatrix(2)
	if err := m.AddRegion(pred, 4, labels, 3, 2, 3); err != nil {
		t.Fatal(err)
	}
	// gt0: (0,0)→0, (1,1)→1, (1,2)→0 ; gt1: (0,1)→1, (1,0)→1
	if want := []int64{2, 1, 0, 2}; !slices.Equal(m.Counts, want) {
		t.Errorf("counts %v, want %v", m.Counts, want)
	}
	for _, tc := range []struct {
		name         string
		ps, ls, h, w int
		want         string
	}{
		{"stride", 2, 3, 2, 3, "region 2x3 does not fit row strides 2 (pred) and 3 (labels)"},
		{"short pred", 4, 3, 4, 3, "pred has 12 values, region 4x3 with stride 4 needs 15"},
		{"short labels", 4, 3, 3, 3, "labels have 6 values, region 3x3 with stride 3 needs 9"},
	} {
		if err := m.AddRegion(pred, tc.ps, labels, tc.ls, tc.h, tc.w); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestConfusionErrors(t *testing.T) {
	m := NewConfusionMatrix(3)
	mustAdd(t, m, []int{0, 1}, []int{0, 1})
	before := slices.Clone(m.Counts)
	tests := []struct {
		name         string
		pred, labels []int
		want         string
	}{
		{"lengths", []int{0}, []int{0, 1}, "metrics: 1 predictions for 2 labels"},
		{"label", []int{0, 0, 0}, []int{0, 3, 1}, "metrics: label 3 at row 0, column 1 is out of range [0, 3) and is not the ignore index 255"},
		{"negative label", []int{0, 0}, []int{0, -1}, "label -1"},
		{"pred", []int{0, 0, 5}, []int{0, 1, 2}, "metrics: prediction 5 at row 0, column 2 is out of range [0, 3)"},
	}
	for _, tc := range tests {
		if err := m.Add(tc.pred, tc.labels); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if !slices.Equal(m.Counts, before) {
		t.Errorf("a failed Add changed the counts: %v, was %v", m.Counts, before)
	}
	if err := m.Merge(NewConfusionMatrix(4)); err == nil || !strings.Contains(err.Error(), "cannot merge a matrix of 4 classes ignoring 255 into one of 3 classes") {
		t.Errorf("merge: %v", err)
	}
	other := NewConfusionMatrix(3)
	other.IgnoreIndex = label.NoIgnore
	if err := m.Merge(other); err == nil {
		t.Error("merging matrices with different ignore indices succeeded")
	}
	var zero ConfusionMatrix
	if err := zero.Add([]int{0}, []int{0}); err == nil || !strings.Contains(err.Error(), "use NewConfusionMatrix") {
		t.Errorf("zero matrix: %v", err)
	}
	if _, err := m.ScoresNamed([]string{"a"}); err == nil || !strings.Contains(err.Error(), "got 1 class names for 3 classes") {
		t.Errorf("names: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewConfusionMatrix(0) did not panic")
		}
	}()
	NewConfusionMatrix(0)
}

// TestIgnoreIndex: 0 in a literal matrix means 255; label.NoIgnore scores 255 as a label (an
// error here, 255 being out of range).
func TestIgnoreIndex(t *testing.T) {
	m := &ConfusionMatrix{Classes: 2, Counts: make([]int64, 4)}
	mustAdd(t, m, []int{1, 0}, []int{255, 0})
	if m.Total() != 1 {
		t.Errorf("total %d, want 1", m.Total())
	}
	m.IgnoreIndex = label.NoIgnore
	if err := m.Add([]int{1}, []int{255}); err == nil {
		t.Error("label.NoIgnore: label 255 accepted")
	}
}

// tableOf returns what s.WriteTable writes.
func tableOf(t *testing.T, s interface{ WriteTable(io.Writer) error }) string {
	t.Helper()
	var b strings.Builder
	if err := s.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestScoresJSONAndTable(t *testing.T) {
	m := NewConfusionMatrix(21)
	mustAdd(t, m, []int{0, 0, 15, 1}, []int{0, 15, 15, 255})
	s := m.Scores()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"miou", "pixel_acc", "mean_acc", "fwiou", "pixels", "classes_present", "per_class"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON has no key %q: %s", k, b)
		}
	}
	pc := raw["per_class"].([]any)
	aero := pc[1].(map[string]any)
	if aero["name"] != "aeroplane" || aero["iou"] != nil || aero["acc"] != nil || aero["present"] != false {
		t.Errorf("absent class JSON = %v, want name aeroplane, iou and acc null", aero)
	}
	person := pc[15].(map[string]any)
	if person["iou"] != 0.5 || person["acc"] != 0.5 {
		t.Errorf("person JSON = %v, want iou 0.5 acc 0.5", person)
	}
	var back Scores
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !near(back.MeanIoU, s.MeanIoU) || !math.IsNaN(back.PerClass[1].IoU) || back.PerClass[15].Name != "person" {
		t.Errorf("round trip: %+v", back)
	}

	table := tableOf(t, s)
	for _, want := range []string{"background", "person", "0.5000", "mIoU 0.5000  pixel acc 0.6667  mean acc 0.7500", "2 of 21 classes present, 3 pixels",
		"(19 classes absent from both the ground truth and the prediction are not listed)"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "aeroplane") {
		t.Errorf("table lists the absent aeroplane:\n%s", table)
	}
	var all strings.Builder
	if err := s.WriteTableAbsent(&all, true); err != nil || !strings.Contains(all.String(), "aeroplane") || !strings.Contains(all.String(), "absent") {
		t.Errorf("table with absent classes (%v):\n%s", err, all.String())
	}
	named, err := NewConfusionMatrix(2).ScoresNamed([]string{"road", "sky"})
	if err != nil {
		t.Fatal(err)
	}
	if tb := tableOf(t, named); !strings.Contains(tb, "2 classes absent") || !strings.Contains(tb, "mIoU n/a") {
		t.Errorf("empty named table:\n%s", tb)
	}
	if got := NewConfusionMatrix(3).Scores().PerClass; got[0].Name != "class0" || got[2].Name != "class2" {
		t.Errorf("3 unnamed classes are named %q .. %q, want class0 .. class2", got[0].Name, got[2].Name)
	}
}

func BenchmarkConfusionAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	pred, labels := randSeg(r, 512*512, 21, 0.05)
	m := NewConfusionMatrix(21)
	b.ReportAllocs()
	b.SetBytes(int64(len(pred)))
	for b.Loop() {
		if err := m.Add(pred, labels); err != nil {
			b.Fatal(err)
		}
	}
}
