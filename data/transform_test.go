package data

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"golang.org/x/image/draw"

	"github.com/vggo/vggo/label"
)

func mustTransformer(t *testing.T, tf Transform, task label.Task) *transformer {
	t.Helper()
	tr, err := newTransformer(tf, task)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func segExample(w, h int) Example {
	return Example{ID: "x", Image: synthImage(w, h), Mask: synthMask(w, h, 21), Label: -1}
}

// runApply transforms ex into a fresh H x W output.
func runApply(tr *transformer, ex Example, r *rng, H, W int) ([]float32, []int) {
	img := make([]float32, 3*H*W)
	lab := make([]int, H*W)
	if tr.task == label.Classification {
		lab = lab[:1]
	}
	var s scratch
	tr.apply(&ex, r, img, lab, H, W, &s)
	return img, lab
}

func TestNormalisation(t *testing.T) {
	tr := mustTransformer(t, Transform{}, label.Segmentation)
	want := [3]float32{(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225}
	for c := range 3 {
		if got := tr.lut[c][255]; math.Abs(float64(got-want[c])) > 1e-6 {
			t.Errorf("channel %d: got %v, want %v", c, got, want[c])
		}
	}
	tr = mustTransformer(t, Transform{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}}, label.Segmentation)
	if tr.lut[0][0] != -1 || tr.lut[2][255] != 1 {
		t.Errorf("mean/std 0.5: got %v %v, want -1 1", tr.lut[0][0], tr.lut[2][255])
	}
}

// TestSegCentred: AugmentNone centres the image in the crop window, padding
// (0 / 255) where it is smaller and cropping where it is larger.
func TestSegCentred(t *testing.T) {
	const H, W = 16, 20
	for _, tc := range []struct{ w, h int }{{10, 8}, {30, 25}, {20, 16}, {21, 15}} {
		for _, aug := range []Augment{AugmentNone, AugmentFlip} {
			tr := mustTransformer(t, Transform{Train: true, Augment: aug, CropH: H, CropW: W}, label.Segmentation)
			ex := segExample(tc.w, tc.h)
			ox, oy := (tc.w-W)/2, (tc.h-H)/2
			for seed := range 4 {
				r := newRNG(uint64(seed), streamSample, 0, 0)
				img, lab := runApply(tr, ex, &r, H, W)
				r = newRNG(uint64(seed), streamSample, 0, 0)
				flip := aug == AugmentFlip && r.coin()
				for y := range H {
					for x := range W {
						sx, sy := x+ox, y+oy
						wantL, wantR := label.Ignore, float32(0)
						if sx >= 0 && sy >= 0 && sx < tc.w && sy < tc.h {
							wantL = int(ex.Mask.GrayAt(sx, sy).Y)
							wantR = tr.lut[0][ex.Image.RGBAAt(sx, sy).R]
						}
						ox := x
						if flip {
							ox = W - 1 - x
						}
						if lab[y*W+ox] != wantL || img[y*W+ox] != wantR {
							t.Fatalf("%dx%d %v seed %d (%d,%d): got label %d R %v, want %d %v",
								tc.w, tc.h, aug, seed, x, y, lab[y*W+ox], img[y*W+ox], wantL, wantR)
						}
					}
				}
			}
		}
	}
}

// TestSegFlipBothWays: AugmentFlip flips about half of the samples.
func TestSegFlipBothWays(t *testing.T) {
	none := mustTransformer(t, Transform{Train: true, Augment: AugmentNone, CropH: 8, CropW: 8}, label.Segmentation)
	flip := mustTransformer(t, Transform{Train: true, Augment: AugmentFlip, CropH: 8, CropW: 8}, label.Segmentation)
	ex := segExample(8, 8)
	_, base := runApply(none, ex, nil, 8, 8)
	flipped := 0
	for i := range 40 {
		r := newRNG(7, streamSample, 0, i)
		_, lab := runApply(flip, ex, &r, 8, 8)
		if lab[0] != base[0] {
			flipped++
		}
	}
	if flipped < 10 || flipped > 30 {
		t.Errorf("got %d flips of 40", flipped)
	}
}

// TestSegFullAlignment: after scale/pad/crop/flip, every label still sits on the
// colour of its class. The image's red channel is 10*class on blocks of classes;
// pixels whose 3x3 output neighbourhood has one label must carry its colour.
func TestSegFullAlignment(t *testing.T) {
	const w, h, H, W = 60, 44, 48, 48
	ex := Example{Image: image.NewRGBA(image.Rect(0, 0, w, h)), Mask: image.NewGray(image.Rect(0, 0, w, h)), Label: -1}
	for y := range h {
		for x := range w {
			c := uint8((x/12 + 5*(y/11)) % 21)
			ex.Mask.Pix[y*w+x] = c
			ex.Image.SetRGBA(x, y, rgba(10*c, 0, 0))
		}
	}
	tr := mustTransformer(t, Transform{Train: true, CropH: H, CropW: W}, label.Segmentation)
	padded, full, checked := 0, 0, 0
	for i := range 30 {
		r := newRNG(1, streamSample, 3, i)
		img, lab := runApply(tr, ex, &r, H, W)
		hasPad := false
		for y := range H {
			for x := range W {
				l := lab[y*W+x]
				if l == label.Ignore {
					hasPad = true
					if img[y*W+x] != 0 {
						t.Fatalf("sample %d (%d,%d): padding has image value %v, want 0", i, x, y, img[y*W+x])
					}
					continue
				}
				if x == 0 || y == 0 || x == W-1 || y == H-1 || !sameAround(lab, W, x, y) {
					continue
				}
				want := tr.lut[0][10*l]
				if math.Abs(float64(img[y*W+x]-want)) > 0.02 {
					t.Fatalf("sample %d (%d,%d): label %d has R %v, want %v", i, x, y, l, img[y*W+x], want)
				}
				checked++
			}
		}
		if hasPad {
			padded++
		} else {
			full++
		}
	}
	if padded == 0 || full == 0 || checked < 10000 {
		t.Errorf("got %d padded and %d full crops, %d pixels checked: the scale range is not exercised", padded, full, checked)
	}
}

func rgba(r, g, b uint8) color.RGBA { return color.RGBA{r, g, b, 255} }

func sameAround(lab []int, W, x, y int) bool {
	l := lab[y*W+x]
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			if lab[(y+dy)*W+x+dx] != l {
				return false
			}
		}
	}
	return true
}

// TestNearestMatchesDraw: the mask's nearest-neighbour tables pick the same
// source pixels as draw.NearestNeighbor, with the crop offsets used.
func TestNearestMatchesDraw(t *testing.T) {
	for _, tc := range []struct{ n, d, off, out int }{
		{10, 10, 0, 10}, {10, 25, 3, 12}, {25, 10, -4, 16}, {250, 125, 7, 100}, {7, 13, 0, 13}, {200, 399, 150, 64},
	} {
		src := image.NewGray(image.Rect(0, 0, tc.n, 1))
		for i := range src.Pix {
			src.Pix[i] = uint8(i)
		}
		dst := image.NewGray(image.Rect(0, 0, tc.out, 1))
		for i := range dst.Pix {
			dst.Pix[i] = 255
		}
		draw.NearestNeighbor.Scale(dst, image.Rect(-tc.off, 0, tc.d-tc.off, 1), src, src.Rect, draw.Src, nil)
		tab := make([]int, tc.out)
		nearest(tab, tc.off, tc.d, tc.n)
		for i, v := range tab {
			want := int(dst.Pix[i])
			if x := i + tc.off; x < 0 || x >= tc.d {
				want = -1
			}
			if v != want {
				t.Errorf("%+v: output %d: got %d, want %d", tc, i, v, want)
			}
		}
	}
}

func TestClassifyTransforms(t *testing.T) {
	// Left half red, right half blue, 40x20.
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			if x < 20 {
				img.SetRGBA(x, y, rgba(255, 0, 0))
			} else {
				img.SetRGBA(x, y, rgba(0, 0, 255))
			}
		}
	}
	ex := Example{Image: img, Label: 2}
	t.Run("eval centre crop", func(t *testing.T) {
		tr := mustTransformer(t, Transform{CropH: 10, CropW: 10, Resize: 10}, label.Classification)
		out, lab := runApply(tr, ex, nil, 10, 10)
		if lab[0] != 2 {
			t.Errorf("label: got %d, want 2", lab[0])
		}
		// Resized to 20x10; the centre crop holds x 5..14: red on the left, blue on the right.
		if r, b := out[5*10+1], out[2*100+5*10+1]; r != tr.lut[0][255] || b != tr.lut[2][0] {
			t.Errorf("left: got R %v B %v, want red", r, b)
		}
		if r, b := out[5*10+8], out[2*100+5*10+8]; r != tr.lut[0][0] || b != tr.lut[2][255] {
			t.Errorf("right: got R %v B %v, want blue", r, b)
		}
	})
	t.Run("default resize", func(t *testing.T) {
		tr := mustTransformer(t, Transform{CropH: 224, CropW: 224}, label.Classification)
		if tr.Resize != 256 {
			t.Errorf("got %d, want 256", tr.Resize)
		}
	})
	t.Run("random resized crop", func(t *testing.T) {
		tr := mustTransformer(t, Transform{Train: true, CropH: 12, CropW: 16}, label.Classification)
		for i := range 50 {
			r := newRNG(0, streamSample, 0, i)
			rect := tr.randomResizedCrop(&r, 40, 20)
			area := float64(rect.Dx()*rect.Dy()) / 800
			ratio := float64(rect.Dx()) / float64(rect.Dy())
			if !rect.In(img.Rect) || area < 0.07 || ratio < 0.7 || ratio > 1.4 {
				t.Errorf("sample %d: got %v (area %.2f, ratio %.2f)", i, rect, area, ratio)
			}
		}
		r := newRNG(0, streamSample, 0, 0)
		out, lab := runApply(tr, ex, &r, 12, 16)
		if len(out) != 3*12*16 || lab[0] != 2 {
			t.Errorf("got %d values, label %d", len(out), lab[0])
		}
		// A thin image: every try fails, the fallback clamps the ratio.
		r = newRNG(0, streamSample, 0, 0)
		rect := tr.randomResizedCrop(&r, 100, 2)
		if rect.Dy() != 2 || rect.Dx() != 3 || !rect.In(image.Rect(0, 0, 100, 2)) {
			t.Errorf("thin fallback: got %v", rect)
		}
	})
}

func TestTransformValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		tf   Transform
		task label.Task
		want string
	}{
		{"seg train without crop", Transform{Train: true}, label.Segmentation, "needs CropH and CropW"},
		{"classification without crop", Transform{}, label.Classification, "classification needs CropH"},
		{"scale", Transform{ScaleMin: 2, ScaleMax: 1}, label.Segmentation, "scale range"},
		{"area", Transform{AreaMin: 0.5, AreaMax: 2}, label.Segmentation, "area range"},
		{"stride", Transform{Stride: -2}, label.Segmentation, "stride -2"},
		{"std", Transform{Std: [3]float32{1, 0, 1}}, label.Segmentation, "channel 1"},
		{"augment", Transform{Augment: 7}, label.Segmentation, "unknown augmentation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newTransformer(tc.tf, tc.task)
			if err == nil || !strings.HasPrefix(err.Error(), "data: transform: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := newTransformer(Transform{}, label.Segmentation); err != nil {
		t.Errorf("segmentation evaluation needs no crop: got %v", err)
	}
}

func TestParseAugment(t *testing.T) {
	for _, a := range []Augment{AugmentFull, AugmentFlip, AugmentNone} {
		if got, err := ParseAugment(a.String()); got != a || err != nil {
			t.Errorf("ParseAugment(%q): got %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseAugment("heavy"); err == nil || !strings.Contains(err.Error(), "want full, flip or none") {
		t.Errorf("got %v", err)
	}
}
