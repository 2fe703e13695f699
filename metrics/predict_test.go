package metrics

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestArgmaxNCHW(t *testing.T) {
	nan := float32(math.NaN())
	// n = 1, c = 3, h = 1, w = 4; planes by class. Pixels:
	//   0: (1, 5, 2) → 1;  1: (3, 3, 0) → 0 (tie, lower class);
	//   2: (NaN, 1, 2) → 2 (NaN never wins);  3: (-1e4, 1e4, 0) → 1.
	logits := []float32{
		1, 3, nan, -1e4,
		5, 3, 1, 1e4,
		2, 0, 2, 0,
	}
	got := make([]int, 4)
	if err := ArgmaxNCHW(logits, 1, 3, 1, 4, got); err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 0, 2, 1}; !slices.Equal(got, want) {
		t.Errorf("ArgmaxNCHW = %v, want %v", got, want)
	}
	// Two images, (2, 2, 1, 2): image 1 has the larger class-1 plane.
	got = make([]int, 4)
	if err := ArgmaxNCHW([]float32{1, 1, 0, 0, 0, 0, 1, 1}, 2, 2, 1, 2, got); err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 0, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("two images: %v, want %v", got, want)
	}
	rows := make([]int, 2)
	if err := Argmax([]float32{0, 2, 1, 7, 7, 3}, 2, 3, rows); err != nil || !slices.Equal(rows, []int{1, 0}) {
		t.Errorf("Argmax = %v (%v), want [1 0]", rows, err)
	}
	if err := ArgmaxNCHW(logits, 1, 3, 2, 4, got); err == nil || !strings.Contains(err.Error(), "got 12 logits, shape (1, 3, 2, 4) needs 24") {
		t.Errorf("shape error: %v", err)
	}
	if err := Argmax([]float32{1, 2}, 1, 2, make([]int, 2)); err == nil || !strings.Contains(err.Error(), "dst has 2 values, want 1") {
		t.Errorf("dst error: %v", err)
	}
}

func TestSoftmax(t *testing.T) {
	// (1, 2, 1, 2): pixel 0 = (0, ln 3) → (1/4, 3/4); pixel 1 = (1e4, -1e4) → (1, 0).
	logits := []float32{0, 1e4, float32(math.Log(3)), -1e4}
	dst := make([]float32, 4)
	if err := SoftmaxNCHW(logits, 1, 2, 1, 2, dst); err != nil {
		t.Fatal(err)
	}
	want := []float32{0.25, 1, 0.75, 0}
	for i := range want {
		if math.Abs(float64(dst[i]-want[i])) > 1e-6 {
			t.Errorf("SoftmaxNCHW = %v, want %v", dst, want)
			break
		}
	}
	// In place, rows.
	rows := []float32{1, 1, 1, 1, 0, 0, 0, 0}
	if err := Softmax(rows, 2, 4, rows); err != nil {
		t.Fatal(err)
	}
	for _, v := range rows {
		if v != 0.25 {
			t.Fatalf("in-place Softmax = %v, want all 0.25", rows)
		}
	}
	if err := Softmax(rows, 3, 4, rows); err == nil {
		t.Error("Softmax with a wrong n succeeded")
	}
}

func TestTopClasses(t *testing.T) {
	nan := float32(math.NaN())
	scores := []float32{0.1, 0.5, nan, 0.5, 0.9, 0.2}
	tests := []struct {
		k    int
		want []int
	}{
		{0, []int{}}, {1, []int{4}}, {3, []int{4, 1, 3}}, {5, []int{4, 1, 3, 5, 0}}, {10, []int{4, 1, 3, 5, 0, 2}},
	}
	for _, tc := range tests {
		if got := TopClasses(scores, tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("TopClasses(k=%d) = %v, want %v", tc.k, got, tc.want)
		}
	}
}
