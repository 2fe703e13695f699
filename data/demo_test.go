package data

import (
	"bytes"
	"context"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vggo/vggo/label"
)

var smallDemo = DemoConfig{Train: 6, Val: 3, Size: 48, Seed: 5}

// TestDemoRoundTrip: what WriteDemo draws is what OpenVOC reads back: the labels
// exactly, the pixels within JPEG's loss.
func TestDemoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDemo(dir, smallDemo); err != nil {
		t.Fatal(err)
	}
	for split, n := range map[string]int{"train": 6, "val": 3, "trainval": 9} {
		v, err := OpenVOC(dir, split, VOCOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v.Len() != n {
			t.Fatalf("%s: got %d samples, want %d", split, v.Len(), n)
		}
	}
	v, _ := OpenVOC(dir, "trainval", VOCOptions{})
	for i := range v.Len() {
		ex, err := v.Load(i)
		if err != nil {
			t.Fatal(err)
		}
		img, mask := demoSample(smallDemo, i)
		if ex.ID != demoID(i) || !bytes.Equal(ex.Mask.Pix, mask.Pix) {
			t.Fatalf("sample %d (%s): labels differ", i, ex.ID)
		}
		var sum float64
		for k := range img.Pix {
			sum += math.Abs(float64(img.Pix[k]) - float64(ex.Image.Pix[k]))
		}
		// The backgrounds carry per-pixel noise, which JPEG (quality 90, 4:2:0
		// chroma) smooths: about 6 levels of mean error.
		if mae := sum / float64(len(img.Pix)); mae > 8 {
			t.Errorf("sample %d: mean absolute pixel error %.2f after JPEG, want <= 8", i, mae)
		}
		b, _ := os.ReadFile(v.Sample(i).ImagePath)
		if dec, _ := DecodeImage(b); !bytes.Equal(dec.Pix, ex.Image.Pix) {
			t.Errorf("sample %d: Load differs from DecodeImage of the file", i)
		}
		mb, _ := os.ReadFile(v.Sample(i).MaskPath)
		if mb[24] != 8 || mb[25] != 3 {
			t.Errorf("sample %d: mask is depth %d colour type %d, want an 8-bit palette PNG", i, mb[24], mb[25])
		}
	}
}

// TestDemoDeterministic: two writes give the same bytes.
func TestDemoDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := WriteDemo(a, smallDemo); err != nil {
		t.Fatal(err)
	}
	if err := WriteDemo(b, smallDemo); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs", rel)
		}
		n++
		return nil
	})
	if err != nil || n != 2*9+3+1 {
		t.Errorf("got %d files, %v", n, err)
	}
}

func TestEnsureDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for i, want := range []bool{true, false} {
		written, err := EnsureDemo(dir, smallDemo)
		if err != nil || written != want {
			t.Fatalf("call %d: got written %v, %v; want %v", i, written, err, want)
		}
	}
	// An interrupted write: a file missing, or the marker says "being written".
	os.Remove(filepath.Join(dir, "SegmentationClass", demoID(4)+".png"))
	if written, err := EnsureDemo(dir, smallDemo); err != nil || !written {
		t.Fatalf("missing file: got written %v, %v", written, err)
	}
	os.WriteFile(filepath.Join(dir, demoMarker), []byte(demoPending), 0o644)
	if written, err := EnsureDemo(dir, smallDemo); err != nil || !written || !demoComplete(dir, smallDemo) {
		t.Fatalf("partial marker: got written %v, %v", written, err)
	}
	// Another config rewrites the dir, dropping the old files.
	other := smallDemo
	other.Train = 2
	if written, err := EnsureDemo(dir, other); err != nil || !written {
		t.Fatalf("other config: got written %v, %v", written, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "JPEGImages", demoID(8)+".jpg")); err == nil {
		t.Error("a file of the old config survived")
	}
	// A folder that is not a demo is never written over.
	foreign := t.TempDir()
	writeFile(t, filepath.Join(foreign, "JPEGImages", "mine.jpg"), []byte("x"))
	_, err := EnsureDemo(foreign, smallDemo)
	if err == nil || !strings.Contains(err.Error(), "refusing to write over it") {
		t.Errorf("foreign dir: got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "JPEGImages", "mine.jpg")); string(b) != "x" {
		t.Error("foreign file changed")
	}
	if err := WriteDemo(t.TempDir(), DemoConfig{Size: 8}); err == nil {
		t.Error("size 8: got nil error")
	}
}

// TestDemoDefault writes the default demo (200 + 50 images of 128x128) and checks that its classes can be told apart by local colour alone: a
// nearest-mean colour classifier fitted on train must score well above chance
// on val.
func TestDemoDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 250 images")
	}
	dir := t.TempDir()
	start := time.Now()
	if err := WriteDemo(dir, DemoConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("WriteDemo: %v", time.Since(start)) // about 1 s on 2 cores; not asserted (-race, loaded machines)
	train, err := OpenVOC(dir, "train", VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	val, _ := OpenVOC(dir, "val", VOCOptions{})
	if train.Len() != 200 || val.Len() != 50 {
		t.Fatalf("got %d train, %d val", train.Len(), val.Len())
	}
	r, err := Check(context.Background(), train, CheckOptions{Workers: 2})
	if err != nil || !r.OK() || r.MinH != 128 || r.MaxW != 128 {
		t.Fatalf("check: %v %v", r, err)
	}
	classes := append([]int{0}, DemoClasses()...)
	for _, c := range classes {
		if r.Pixels[c] == 0 {
			t.Errorf("class %d has no pixel", c)
		}
	}
	// Class mean colours of 3x3-averaged pixels on train, then nearest mean on val.
	var sum [21][3]float64
	var cnt [21]float64
	eachPixel(t, train, func(l int, c [3]float64) {
		for k := range 3 {
			sum[l][k] += c[k]
		}
		cnt[l]++
	})
	var conf [21][21]float64
	eachPixel(t, val, func(l int, c [3]float64) {
		best, bd := 0, math.Inf(1)
		for _, k := range classes {
			var d float64
			for j := range 3 {
				e := c[j] - sum[k][j]/cnt[k]
				d += e * e
			}
			if d < bd {
				best, bd = k, d
			}
		}
		conf[l][best]++
	})
	var miou float64
	for _, k := range classes {
		var fp, fn float64
		for _, j := range classes {
			if j != k {
				fp += conf[j][k]
				fn += conf[k][j]
			}
		}
		miou += conf[k][k] / (conf[k][k] + fp + fn)
	}
	miou /= float64(len(classes))
	t.Logf("nearest-mean colour classifier: val mIoU %.3f over %d classes", miou, len(classes))
	if miou < 0.5 {
		t.Errorf("got val mIoU %.3f from colour alone, want >= 0.5", miou)
	}
}

// eachPixel calls f with the label and the 3x3 mean colour of every labelled
// interior pixel.
func eachPixel(t *testing.T, ds Dataset, f func(l int, c [3]float64)) {
	for i := range ds.Len() {
		ex, err := ds.Load(i)
		if err != nil {
			t.Fatal(err)
		}
		m, img := ex.Mask, ex.Image
		for y := 1; y < m.Rect.Dy()-1; y++ {
			for x := 1; x < m.Rect.Dx()-1; x++ {
				l := int(m.Pix[y*m.Stride+x])
				if l == label.Ignore {
					continue
				}
				var c [3]float64
				for dy := -1; dy <= 1; dy++ {
					p := img.Pix[(y+dy)*img.Stride+4*(x-1):]
					for k := range 3 {
						c[k] += float64(int(p[k])+int(p[4+k])+int(p[8+k])) / 9
					}
				}
				f(l, c)
			}
		}
	}
}
