package data

import (
	"fmt"
	"image"
	"math"

	"golang.org/x/image/draw"

	"github.com/vggo/vggo/label"
)

// Augment is the training augmentation level.
type Augment int

const (
	// AugmentFull (the default). Segmentation: random scale in [ScaleMin, ScaleMax]
	// (bilinear image, nearest mask), pad to the crop size (image with the mean,
	// mask with 255), random crop, random horizontal flip. Classification: random
	// resized crop and random flip.
	AugmentFull Augment = iota
	// AugmentFlip: AugmentNone followed by a random horizontal flip.
	AugmentFlip
	// AugmentNone: deterministic. Segmentation: the image at its own scale, centred
	// in the crop window (padded with the mean / 255 where smaller, centre-cropped
	// where larger). Classification: the evaluation transform (resize the shorter
	// side, centre crop).
	AugmentNone
)

// ParseAugment parses "full", "flip" or "none".
func ParseAugment(s string) (Augment, error) {
	switch s {
	case "full":
		return AugmentFull, nil
	case "flip":
		return AugmentFlip, nil
	case "none":
		return AugmentNone, nil
	}
	return 0, fmt.Errorf("data: augmentation %q: want full, flip or none", s)
}

func (a Augment) String() string {
	switch a {
	case AugmentFull:
		return "full"
	case AugmentFlip:
		return "flip"
	case AugmentNone:
		return "none"
	}
	return fmt.Sprintf("Augment(%d)", int(a))
}

// ImageNet normalisation constants, in units of the 0..1 pixel range.
var (
	imageNetMean = [3]float32{0.485, 0.456, 0.406}
	imageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// Transform turns decoded examples into network inputs: float32 CHW planes
// normalised as (pixel/255 - Mean)/Std, so that padding "with the mean" is 0.
// The zero value of every field means its default.
type Transform struct {
	// Train selects the training transform (augmented per Augment); otherwise
	// evaluation: segmentation takes the whole image at its own resolution, padded
	// bottom/right to the batch's size (a multiple of Stride) with label 255;
	// classification resizes the shorter side to Resize and centre-crops.
	Train   bool
	Augment Augment

	// CropH, CropW: the network input size. Required for segmentation training
	// and for classification; ignored by segmentation evaluation.
	CropH, CropW int
	// ScaleMin, ScaleMax: segmentation scale range (default 0.5, 2.0).
	ScaleMin, ScaleMax float64
	// AreaMin, AreaMax: classification random-resized-crop area fraction range
	// (default 0.08, 1); the aspect ratio is drawn log-uniformly in [3/4, 4/3].
	AreaMin, AreaMax float64
	// Resize: classification evaluation's shorter side (default CropH*256/224).
	Resize int
	// Stride: segmentation evaluation pads H and W up to a multiple of it (default 1).
	Stride int
	// Mean, Std: per-channel normalisation of RGB in [0, 1]. If Std is all zero,
	// both are ImageNet's (mean 0.485 0.456 0.406, std 0.229 0.224 0.225).
	Mean, Std [3]float32
}

// transformer is a validated Transform with its defaults filled in.
type transformer struct {
	Transform
	task label.Task
	lut  [3][256]float32 // normalised value of each byte, per channel
}

func newTransformer(t Transform, task label.Task) (*transformer, error) {
	if t.ScaleMin == 0 && t.ScaleMax == 0 {
		t.ScaleMin, t.ScaleMax = 0.5, 2.0
	}
	if t.AreaMin == 0 && t.AreaMax == 0 {
		t.AreaMin, t.AreaMax = 0.08, 1
	}
	if t.Stride == 0 {
		t.Stride = 1
	}
	if t.Std == [3]float32{} {
		t.Mean, t.Std = imageNetMean, imageNetStd
	}
	if t.Resize == 0 && t.CropH > 0 {
		t.Resize = (t.CropH*256 + 112) / 224
	}
	needCrop := task == label.Classification || t.Train
	switch {
	case t.Augment < AugmentFull || t.Augment > AugmentNone:
		return nil, fmt.Errorf("data: transform: unknown augmentation %v (want full, flip or none)", t.Augment)
	case needCrop && (t.CropH <= 0 || t.CropW <= 0):
		what := "segmentation training"
		if task == label.Classification {
			what = "classification"
		}
		return nil, fmt.Errorf("data: transform: crop %dx%d: %s needs CropH and CropW > 0 (e.g. 512x512 or 224x224)", t.CropH, t.CropW, what)
	case !(t.ScaleMin > 0 && t.ScaleMin <= t.ScaleMax && t.ScaleMax <= 16):
		return nil, fmt.Errorf("data: transform: scale range [%g, %g]: want 0 < min <= max <= 16", t.ScaleMin, t.ScaleMax)
	case !(t.AreaMin > 0 && t.AreaMin <= t.AreaMax && t.AreaMax <= 1):
		return nil, fmt.Errorf("data: transform: area range [%g, %g]: want 0 < min <= max <= 1", t.AreaMin, t.AreaMax)
	case t.Stride < 1:
		return nil, fmt.Errorf("data: transform: stride %d: want >= 1", t.Stride)
	case task == label.Classification && t.Resize < 1:
		return nil, fmt.Errorf("data: transform: resize %d: want >= 1", t.Resize)
	}
	for c, s := range t.Std {
		if !(s > 0) {
			return nil, fmt.Errorf("data: transform: std %v: every channel must be > 0 (channel %d is not)", t.Std, c)
		}
	}
	tr := &transformer{Transform: t, task: task}
	for c := range 3 {
		for v := range 256 {
			tr.lut[c][v] = (float32(v)/255 - t.Mean[c]) / t.Std[c]
		}
	}
	return tr, nil
}

// fixedSize reports the output size when every sample has the same one
// (segmentation training, classification); ok is false for segmentation
// evaluation, whose batches take their samples' largest size.
func (t *transformer) fixedSize() (h, w int, ok bool) {
	if t.task == label.Classification || t.Train {
		return t.CropH, t.CropW, true
	}
	return 0, 0, false
}

// scratch is one worker's reusable memory.
type scratch struct {
	rgba   *image.RGBA
	xs, ys []int
}

func (s *scratch) canvas(w, h int) *image.RGBA {
	if s.rgba == nil || cap(s.rgba.Pix) < 4*w*h {
		s.rgba = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	s.rgba.Pix = s.rgba.Pix[:4*w*h]
	s.rgba.Stride = 4 * w
	s.rgba.Rect = image.Rect(0, 0, w, h)
	return s.rgba
}

func (s *scratch) tables(w, h int) (xs, ys []int) {
	if cap(s.xs) < w {
		s.xs = make([]int, w)
	}
	if cap(s.ys) < h {
		s.ys = make([]int, h)
	}
	return s.xs[:w], s.ys[:h]
}

// apply writes one sample into img (3*H*W floats, CHW) and lab (H*W for
// segmentation, 1 for classification). H, W are the output size: the crop size,
// or for segmentation evaluation the batch size (the sample goes top-left).
func (t *transformer) apply(ex *Example, r *rng, img []float32, lab []int, H, W int, s *scratch) {
	if t.task == label.Classification {
		t.classify(ex, r, img, H, W, s)
		lab[0] = ex.Label
		return
	}
	if !t.Train {
		sw, sh := ex.Image.Rect.Dx(), ex.Image.Rect.Dy()
		xs, ys := s.tables(W, H)
		identity(xs, sw)
		identity(ys, sh)
		t.writeRGB(img, H, W, ex.Image, 0, 0, 0, min(sw, W), 0, min(sh, H), false)
		writeMask(lab, H, W, ex.Mask, xs, ys, false)
		return
	}
	t.segTrain(ex, r, img, lab, H, W, s)
}

func identity(t []int, n int) {
	for i := range t {
		if i < n {
			t[i] = i
		} else {
			t[i] = -1
		}
	}
}

// segTrain: scale, pad, crop, flip, in one pass over the crop window. The scaled
// image occupies crop coordinates [-ox, dw-ox) x [-oy, dh-oy); only its part inside
// the window is computed.
func (t *transformer) segTrain(ex *Example, r *rng, img []float32, lab []int, H, W int, s *scratch) {
	sw, sh := ex.Image.Rect.Dx(), ex.Image.Rect.Dy()
	dw, dh := sw, sh
	var ox, oy int
	flip := false
	switch t.Augment {
	case AugmentFull:
		sc := r.uniform(t.ScaleMin, t.ScaleMax)
		dw = max(1, int(math.Round(float64(sw)*sc)))
		dh = max(1, int(math.Round(float64(sh)*sc)))
		oy = r.intn(max(dh, H) - H + 1)
		ox = r.intn(max(dw, W) - W + 1)
		flip = r.coin()
	case AugmentFlip, AugmentNone:
		ox, oy = (sw-W)/2, (sh-H)/2 // negative: centred padding
		flip = t.Augment == AugmentFlip && r.coin()
	}
	vx0, vx1 := max(0, -ox), min(W, dw-ox)
	vy0, vy1 := max(0, -oy), min(H, dh-oy)
	xs, ys := s.tables(W, H)
	nearest(xs, ox, dw, sw)
	nearest(ys, oy, dh, sh)
	if dw == sw && dh == sh {
		t.writeRGB(img, H, W, ex.Image, ox, oy, vx0, vx1, vy0, vy1, flip)
	} else {
		c := s.canvas(W, H)
		draw.ApproxBiLinear.Scale(c, image.Rect(-ox, -oy, dw-ox, dh-oy), ex.Image, ex.Image.Rect, draw.Src, nil)
		t.writeRGB(img, H, W, c, 0, 0, vx0, vx1, vy0, vy1, flip)
	}
	writeMask(lab, H, W, ex.Mask, xs, ys, flip)
}

// nearest fills t[i] with the source index (of n) that output i+off of a
// d-long resized axis samples by nearest neighbour (pixel centres aligned, as
// draw.NearestNeighbor and draw.ApproxBiLinear do), or -1 outside [0, d).
func nearest(t []int, off, d, n int) {
	for i := range t {
		x := i + off
		if x < 0 || x >= d {
			t[i] = -1
			continue
		}
		t[i] = min((2*x+1)*n/(2*d), n-1)
	}
}

// writeRGB writes the H x W planes: output (x, y) in the valid region
// [vx0,vx1) x [vy0,vy1) is src pixel (x+sx, y+sy), mirrored if flip; the rest is
// 0 (the mean).
func (t *transformer) writeRGB(dst []float32, H, W int, src *image.RGBA, sx, sy, vx0, vx1, vy0, vy1 int, flip bool) {
	n := H * W
	pr, pg, pb := dst[:n], dst[n:2*n], dst[2*n:3*n]
	if vx0 > 0 || vy0 > 0 || vx1 < W || vy1 < H {
		clear(dst[:3*n])
	}
	lr, lg, lb := &t.lut[0], &t.lut[1], &t.lut[2]
	for y := vy0; y < vy1; y++ {
		row := src.Pix[(y+sy-src.Rect.Min.Y)*src.Stride+(vx0+sx-src.Rect.Min.X)*4:]
		row = row[:4*(vx1-vx0)]
		o := y * W
		if !flip {
			r, g, b := pr[o+vx0:o+vx1], pg[o+vx0:o+vx1], pb[o+vx0:o+vx1]
			for i := range r {
				p := row[4*i : 4*i+3 : 4*i+3]
				r[i], g[i], b[i] = lr[p[0]], lg[p[1]], lb[p[2]]
			}
		} else {
			for i, x := 0, W-1-vx0; i < vx1-vx0; i, x = i+1, x-1 {
				p := row[4*i : 4*i+3 : 4*i+3]
				pr[o+x], pg[o+x], pb[o+x] = lr[p[0]], lg[p[1]], lb[p[2]]
			}
		}
	}
}

// writeMask writes the H x W labels: output (x, y) is m at (xs[x], ys[y]),
// mirrored if flip, or 255 where either index is -1.
func writeMask(dst []int, H, W int, m *image.Gray, xs, ys []int, flip bool) {
	for y := range H {
		out := dst[y*W : y*W+W]
		if ys[y] < 0 {
			for i := range out {
				out[i] = label.Ignore
			}
			continue
		}
		row := m.Pix[ys[y]*m.Stride:]
		for x, sx := range xs {
			v := label.Ignore
			if sx >= 0 {
				v = int(row[sx])
			}
			if flip {
				out[W-1-x] = v
			} else {
				out[x] = v
			}
		}
	}
}

// classify: random resized crop (training, AugmentFull) or resize the shorter
// side + centre crop, then the optional flip, with draw.BiLinear (which filters
// when it shrinks).
func (t *transformer) classify(ex *Example, r *rng, img []float32, H, W int, s *scratch) {
	src := ex.Image
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	c := s.canvas(W, H)
	flip := false
	if t.Train && t.Augment == AugmentFull {
		sr := t.randomResizedCrop(r, sw, sh)
		flip = r.coin()
		draw.BiLinear.Scale(c, c.Rect, src, sr, draw.Src, nil)
		t.writeRGB(img, H, W, c, 0, 0, 0, W, 0, H, flip)
		return
	}
	if t.Train && t.Augment == AugmentFlip {
		flip = r.coin()
	}
	f := float64(t.Resize) / float64(min(sw, sh))
	rw := max(1, int(math.Round(float64(sw)*f)))
	rh := max(1, int(math.Round(float64(sh)*f)))
	ox, oy := (rw-W)/2, (rh-H)/2
	dr := image.Rect(-ox, -oy, rw-ox, rh-oy)
	draw.BiLinear.Scale(c, dr, src, src.Rect, draw.Src, nil)
	v := dr.Intersect(c.Rect)
	t.writeRGB(img, H, W, c, 0, 0, v.Min.X, v.Max.X, v.Min.Y, v.Max.Y, flip)
}

// randomResizedCrop picks a source rectangle as torchvision's RandomResizedCrop:
// area fraction in [AreaMin, AreaMax], log-uniform aspect ratio in [3/4, 4/3],
// ten tries, then a centre crop clamped to that ratio range.
func (t *transformer) randomResizedCrop(r *rng, sw, sh int) image.Rectangle {
	area := float64(sw) * float64(sh)
	lo, hi := math.Log(3.0/4), math.Log(4.0/3)
	for range 10 {
		target := area * r.uniform(t.AreaMin, t.AreaMax)
		ratio := math.Exp(r.uniform(lo, hi))
		w := int(math.Round(math.Sqrt(target * ratio)))
		h := int(math.Round(math.Sqrt(target / ratio)))
		if w > 0 && h > 0 && w <= sw && h <= sh {
			y := r.intn(sh - h + 1)
			x := r.intn(sw - w + 1)
			return image.Rect(x, y, x+w, y+h)
		}
	}
	w, h := sw, sh
	switch in := float64(sw) / float64(sh); {
	case in < 3.0/4:
		h = min(sh, max(1, int(math.Round(float64(w)*4/3))))
	case in > 4.0/3:
		w = min(sw, max(1, int(math.Round(float64(h)*4/3))))
	}
	x, y := (sw-w)/2, (sh-h)/2
	return image.Rect(x, y, x+w, y+h)
}
