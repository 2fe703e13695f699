package data

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vggo/vggo/label"
)

func TestCheck(t *testing.T) {
	m37 := synthMask(10, 8, 21)
	m37.Pix[3] = 37
	samples := []vocSample{
		goodSample(t, "a", 10, 8),
		{"b", []byte("junk"), encodeMask(t, m37)}, // two problems
		goodSample(t, "c", 12, 6),
		{"d", nil, encodeMask(t, synthMask(10, 8, 21))}, // missing image
		{"e", encodeJPEG(t, synthImage(10, 8)), encodeMask(t, synthMask(9, 8, 21))},
	}
	v, err := OpenVOC(makeVOC(t, t.TempDir(), samples), "train", VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	var calls int
	r, err := Check(context.Background(), v, CheckOptions{Workers: 3, Progress: func(done, total int) {
		calls++
		if done != calls || total != 5 {
			t.Errorf("progress: got %d/%d at call %d", done, total, calls)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, base)
	if r.OK() || calls != 5 {
		t.Fatalf("got OK %v, %d progress calls", r.OK(), calls)
	}
	if got := r.BadIDs(); !reflect.DeepEqual(got, []string{"b", "d", "e"}) {
		t.Errorf("BadIDs: got %v", got)
	}
	want := []struct {
		id, path string
		kind     error
	}{
		{"b", v.Sample(1).ImagePath, ErrFormat},
		{"b", v.Sample(1).MaskPath, ErrMaskValue},
		{"d", v.Sample(3).ImagePath, nil},
		{"e", v.Sample(4).MaskPath, ErrSizeMismatch},
	}
	if len(r.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d: %v", len(r.Problems), len(want), r.Problems)
	}
	for i, w := range want {
		p := r.Problems[i]
		if p.ID != w.id || p.Path != w.path || (w.kind != nil && !errors.Is(p.Err, w.kind)) || !strings.Contains(p.Err.Error(), w.path) {
			t.Errorf("problem %d: got %s %s %v, want %s %s %v", i, p.ID, p.Path, p.Err, w.id, w.path, w.kind)
		}
	}
	// Summary over the good samples a (10x8) and c (12x6).
	if r.MinH != 6 || r.MaxH != 8 || r.MinW != 10 || r.MaxW != 12 {
		t.Errorf("sizes: got %d..%d x %d..%d", r.MinH, r.MaxH, r.MinW, r.MaxW)
	}
	var total int64 = r.Ignored
	for _, n := range r.Pixels {
		total += n
	}
	if total != 10*8+12*6 || r.Ignored != 8+6 || r.Pixels[0] == 0 {
		t.Errorf("pixels: got %d total, %d ignored, %v", total, r.Ignored, r.Pixels)
	}

	var out strings.Builder
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"5 samples (segmentation), 2 good, 3 bad", "problems (4)", v.Sample(3).ImagePath,
		"value 37 (1 pixel)", "image sizes (HxW): 6x10 .. 8x12", "aeroplane", "tvmonitor", "ignore"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("Print: missing %q in\n%s", s, out.String())
		}
	}

	// --skip-bad: the dataset without the bad samples checks clean.
	clean := Exclude(v, r.BadIDs())
	if clean.Len() != 2 || clean.Sample(1).ID != "c" {
		t.Fatalf("Exclude: got %d samples", clean.Len())
	}
	r2, err := Check(context.Background(), clean, CheckOptions{})
	if err != nil || !r2.OK() {
		t.Errorf("clean dataset: got %v, %v", r2.Problems, err)
	}
}

func TestCheckFolder(t *testing.T) {
	root := makeFolders(t, map[string]int{"train/cat/a.jpg": 8, "train/cat/b.jpg": 9, "train/dog/c.png": 10})
	f, err := OpenFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Check(context.Background(), f, CheckOptions{Workers: 2})
	if err != nil || !r.OK() || !reflect.DeepEqual(r.Images, []int{2, 1}) || r.MinW != 8 || r.MaxW != 10 {
		t.Fatalf("got %+v, %v", r, err)
	}
	var out strings.Builder
	r.Print(&out)
	if !strings.Contains(out.String(), "images per class") || !strings.Contains(out.String(), "dog") {
		t.Errorf("Print: got\n%s", out.String())
	}
}

func TestCheckCancel(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	ds := &memDataset{task: label.Segmentation, n: 1000, load: func(i int) {
		if i == 10 {
			cancel()
		}
	}}
	_, err := Check(ctx, ds, CheckOptions{Workers: 2})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "of 1000 samples") {
		t.Errorf("got %v, want a cancelled check", err)
	}
	waitGoroutines(t, base)
}

func TestSubset(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 5}
	s := Subset(ds, []int{4, 1})
	if s.Len() != 2 || s.Sample(0).ID != idOf(4) || s.Task() != label.Segmentation || len(s.ClassNames()) != 21 {
		t.Errorf("got %d samples, %v", s.Len(), s.Sample(0))
	}
	if ex, err := s.Load(1); err != nil || ex.ID != idOf(1) {
		t.Errorf("got %v, %v", ex.ID, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("out-of-range index: no panic")
		}
	}()
	Subset(ds, []int{5})
}
