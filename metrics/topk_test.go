package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestTopKHandComputed, C = 6:
//
//	row 0 (0.1 .9 .3 .2 .5 0), label 1: rank 0          → top-1 and top-5 hit
//	row 1 same,                label 4: rank 1 (0.9)    → top-5 hit only
//	row 2 same,                label 5: rank 5          → miss
//	row 3 all 1,               label 0: rank 0 (ties to the lower index) → hit
//	row 4 all 1,               label 5: rank 5          → miss
//	row 5 (NaN 0 0 0 0 0),     label 0: NaN ranks last  → miss
//
// top-1 = 2/6, top-5 = 3/6; per class: 0: 1/2, 1: 1/1, 4: 0/1, 5: 0/2, 2 and 3 no
// samples → mean class acc = (0.5 + 1 + 0 + 0)/4 = 0.375.
func TestTopKHandComputed(t *testing.T) {
	nan := float32(math.NaN())
	row := []float32{0.1, 0.9, 0.3, 0.2, 0.5, 0}
	ones := []float32{1, 1, 1, 1, 1, 1}
	logits := slices.Concat(row, row, row, ones, ones, []float32{nan, 0, 0, 0, 0, 0})
	tk := NewTopK(6)
	if err := tk.Add(logits, 6, 6, []int{1, 4, 5, 0, 5, 0}); err != nil {
		t.Fatal(err)
	}
	s := tk.Scores()
	if !near(s.Top1, 2.0/6) || !near(s.Top5, 0.5) || !near(s.MeanAcc, 0.375) || s.Samples != 6 {
		t.Errorf("top1 %v top5 %v mean %v samples %d, want 1/3, 0.5, 0.375, 6", s.Top1, s.Top5, s.MeanAcc, s.Samples)
	}
	wantAcc := []float64{0.5, 1, math.NaN(), math.NaN(), 0, 0}
	for i, c := range s.PerClass {
		if !near(c.Acc, wantAcc[i]) {
			t.Errorf("class %d acc %v, want %v", i, c.Acc, wantAcc[i])
		}
	}

	// With fewer than 5 classes every sample is a top-5 hit.
	small := NewTopK(3)
	if err := small.Add([]float32{3, 2, 1}, 1, 3, []int{2}); err != nil {
		t.Fatal(err)
	}
	if s := small.Scores(); s.Top1 != 0 || s.Top5 != 1 {
		t.Errorf("3 classes: top1 %v top5 %v, want 0 and 1", s.Top1, s.Top5)
	}
}

func TestTopKPerfectAndMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, c = 40, 10
	logits := make([]float32, n*c)
	labels := make([]int, n)
	for i := range n {
		for j := range c {
			logits[i*c+j] = r.Float32()
		}
		labels[i] = r.IntN(c)
		logits[i*c+labels[i]] = 2 // the label's logit is the largest
	}
	all := NewTopK(c)
	if err := all.Add(logits, n, c, labels); err != nil {
		t.Fatal(err)
	}
	if s := all.Scores(); s.Top1 != 1 || s.Top5 != 1 || s.MeanAcc != 1 {
		t.Errorf("perfect: %+v", s)
	}
	merged, a, b := NewTopK(c), NewTopK(c), NewTopK(c)
	if err := a.Add(logits[:15*c], 15, c, labels[:15]); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(logits[15*c:], n-15, c, labels[15:]); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*TopK{a, b} {
		if err := merged.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	if merged.Samples != all.Samples || merged.Top1Hits != all.Top1Hits || !slices.Equal(merged.ClassHits, all.ClassHits) ||
		!slices.Equal(merged.ClassSamples, all.ClassSamples) {
		t.Errorf("merged %+v, accumulated %+v", merged, all)
	}
	merged.Reset()
	if merged.Samples != 0 || slices.ContainsFunc(merged.ClassSamples, func(v int64) bool { return v != 0 }) {
		t.Errorf("after Reset: %+v", merged)
	}
}

func TestTopKErrors(t *testing.T) {
	tk := NewTopK(3)
	tests := []struct {
		name   string
		logits []float32
		n, c   int
		labels []int
		want   string
	}{
		{"classes", make([]float32, 8), 2, 4, []int{0, 1}, "metrics: logits have 4 classes, accumulator 3"},
		{"logits", make([]float32, 5), 2, 3, []int{0, 1}, "got 5 logits and 2 labels, want 2×3 = 6 logits and 2 labels"},
		{"labels", make([]float32, 6), 2, 3, []int{0}, "got 6 logits and 1 labels"},
		{"label range", make([]float32, 6), 2, 3, []int{0, 3}, "metrics: label 3 of sample 1 is out of range [0, 3)"},
	}
	for _, tc := range tests {
		if err := tk.Add(tc.logits, tc.n, tc.c, tc.labels); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if tk.Samples != 0 {
		t.Errorf("failed Adds counted %d samples", tk.Samples)
	}
	if err := tk.Merge(NewTopK(4)); err == nil {
		t.Error("merge of different class counts succeeded")
	}
	var zero TopK
	if err := zero.Add(nil, 0, 0, nil); err == nil || !strings.Contains(err.Error(), "use NewTopK") {
		t.Errorf("zero TopK: %v", err)
	}
}

func TestClassificationJSONAndTable(t *testing.T) {
	tk := NewTopK(3)
	if err := tk.Add([]float32{1, 0, 0, 0, 1, 0}, 2, 3, []int{0, 0}); err != nil {
		t.Fatal(err)
	}
	s, err := tk.ScoresNamed([]string{"cat", "dog", "cow"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"top1":0.5,"top5":1,"mean_acc":0.5,"samples":2,"per_class":[{"name":"cat","acc":0.5,"samples":2,"hits":1},{"name":"dog","acc":null,"samples":0,"hits":0},{"name":"cow","acc":null,"samples":0,"hits":0}]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	var back ClassificationScores
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Top1 != 0.5 || !math.IsNaN(back.PerClass[1].Acc) {
		t.Errorf("round trip %+v", back)
	}
	table := tableOf(t, s)
	for _, w := range []string{"cat", "0.5000", "n/a", "top-1 0.5000  top-5 1.0000"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
}
