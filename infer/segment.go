package infer

import (
	"context"
	"image"
	"image/color"
	"math"

	"golang.org/x/image/draw"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/label"
)

// Probs are per-class probabilities: Classes planes of H×W (segmentation), or Classes
// values with H = W = 1 (classification).
type Probs struct {
	Classes, H, W int
	Data          []float32 // Classes*H*W, class-major: Data[(c*H+y)*W+x]
}

// At returns the probability of class c at pixel (x, y).
func (p *Probs) At(c, x, y int) float32 { return p.Data[(c*p.H+y)*p.W+x] }

// Segment returns the most probable class of every pixel, at the image's own size and
// origin, as a paletted image (pixel value = class index) whose palette is the model's
// (the VOC colormap unless the model was trained with --palette). Large images slide the tile (see Options); ctx is checked between tiles.
func (m *Model) Segment(ctx context.Context, img image.Image) (*image.Paletted, error) {
	if err := m.need(label.Segmentation, "Segment"); err != nil {
		return nil, err
	}
	src := rgba(img)
	mask := image.NewPaletted(img.Bounds(), m.palette)
	if m.opt.TTA {
		p, err := m.ttaProbs(ctx, src)
		if err != nil {
			return nil, err
		}
		argmaxProbs(p, mask)
		return mask, nil
	}
	plan := m.plan(src.Rect.Dy(), src.Rect.Dx())
	if err := m.slide(ctx, src, plan, newProgress(m.opt.Progress, plan.passes()), argmaxSink(mask, m.net.Config.Classes)); err != nil {
		return nil, err
	}
	return mask, nil
}

// Probabilities returns the softmax probabilities of every class: for a segmentation
// model at every pixel of the image (Classes×H×W floats: 1 GiB for a 12-megapixel photo
// and 21 classes), for a classifier one per class.
func (m *Model) Probabilities(ctx context.Context, img image.Image) (*Probs, error) {
	if m.info.Task == label.Classification {
		ps, err := m.classProbs(ctx, []image.Image{img})
		if err != nil {
			return nil, err
		}
		return ps[0], nil
	}
	src := rgba(img)
	if m.opt.TTA {
		return m.ttaProbs(ctx, src)
	}
	h, w := src.Rect.Dy(), src.Rect.Dx()
	p := &Probs{Classes: m.net.Config.Classes, H: h, W: w, Data: make([]float32, m.net.Config.Classes*h*w)}
	plan := m.plan(h, w)
	if err := m.slide(ctx, src, plan, newProgress(m.opt.Progress, plan.passes()), softmaxSink(p, false, 1)); err != nil {
		return nil, err
	}
	return p, nil
}

// SegmentBatch segments several images. Those that run whole and share a padded size go
// through the network together, up to Options.Batch at a time; the others one by one.
func (m *Model) SegmentBatch(ctx context.Context, imgs []image.Image) ([]*image.Paletted, error) {
	if err := m.need(label.Segmentation, "SegmentBatch"); err != nil {
		return nil, err
	}
	out := make([]*image.Paletted, len(imgs))
	srcs := make([]*image.RGBA, len(imgs))
	groups := map[[2]int][]int{} // padded size -> image indices, in order
	var keys [][2]int
	for i, img := range imgs {
		srcs[i] = rgba(img)
		out[i] = image.NewPaletted(img.Bounds(), m.palette)
		h, w := srcs[i].Rect.Dy(), srcs[i].Rect.Dx()
		if p := m.plan(h, w); !m.opt.TTA && p.whole {
			k := [2]int{p.th, p.tw}
			if groups[k] == nil {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], i)
			continue
		}
		mask, err := m.Segment(ctx, imgs[i])
		if err != nil {
			return nil, err
		}
		out[i] = mask
	}
	for _, k := range keys {
		idx := groups[k]
		for lo := 0; lo < len(idx); {
			part := idx[lo : lo+batchSize(len(idx)-lo, m.opt.Batch)]
			lo += len(part)
			sinks := make([]rowSink, len(part))
			batch := make([]*image.RGBA, len(part))
			for j, i := range part {
				sinks[j], batch[j] = argmaxSink(out[i], m.net.Config.Classes), srcs[i]
			}
			if err := m.wholeBatch(ctx, batch, k[0], k[1], sinks); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// batchSize is the size of the next forward pass for n images left: a full batch, or
// one image. A graph's batch size is fixed, so batches of 2 or 3 out of 4 would compile
// (and evict) graphs of their own; full batches and single images need two per size.
func batchSize(n, batch int) int {
	if n >= batch {
		return batch
	}
	return 1
}

// rgba returns img as an *image.RGBA whose bounds start at 0,0 (sharing its pixels when
// it already is one). Alpha is ignored.
func rgba(img image.Image) *image.RGBA {
	b := img.Bounds()
	if r, ok := img.(*image.RGBA); ok {
		if b.Min == (image.Point{}) {
			return r
		}
		return &image.RGBA{Pix: r.Pix[r.PixOffset(b.Min.X, b.Min.Y):], Stride: r.Stride, Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
	}
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	if n, ok := img.(*image.NRGBA); ok { // drop alpha rather than premultiply it
		for y := 0; y < b.Dy(); y++ {
			s := n.Pix[n.PixOffset(b.Min.X, b.Min.Y+y):][:4*b.Dx()]
			d := dst.Pix[y*dst.Stride:][:4*b.Dx()]
			for i := 0; i < len(s); i += 4 {
				d[i], d[i+1], d[i+2], d[i+3] = s[i], s[i+1], s[i+2], 255
			}
		}
		return dst
	}
	draw.Draw(dst, dst.Rect, img, b.Min, draw.Src)
	return dst
}

// view is the w×h window of img at (x, y), with bounds starting at 0,0, sharing pixels.
func view(img *image.RGBA, x, y, w, h int) *image.RGBA {
	return &image.RGBA{Pix: img.Pix[y*img.Stride+4*x:], Stride: img.Stride, Rect: image.Rect(0, 0, w, h)}
}

// plan is how one image goes through the network: a grid of th×tw windows (one window
// of the padded image when whole).
type plan struct {
	h, w   int   // image size
	th, tw int   // window (network input) size
	ys, xs []int // window origins
	whole  bool
}

func (p plan) passes() int { return len(p.ys) * len(p.xs) }

func roundUp(v, s int) int { return (v + s - 1) / s * s }

// windows are the origins of size-t windows at step s over n pixels, the last one
// flush with the end (mmsegmentation's slide grid).
func windows(n, t, s int) []int {
	if n <= t {
		return []int{0}
	}
	k := (n-t+s-1)/s + 1
	out := make([]int, k)
	for i := range out {
		out[i] = min(i*s, n-t)
	}
	return out
}

func (m *Model) plan(h, w int) plan {
	s := m.info.Stride
	ph, pw := roundUp(h, s), roundUp(w, s)
	o := m.opt
	if o.Mode == Whole || o.Mode == Auto && ph*pw <= o.TileH*o.TileW {
		return plan{h: h, w: w, th: ph, tw: pw, ys: []int{0}, xs: []int{0}, whole: true}
	}
	th, tw := min(o.TileH, ph), min(o.TileW, pw)
	return plan{h: h, w: w, th: th, tw: tw, ys: windows(h, th, min(o.StrideH, th)), xs: windows(w, tw, min(o.StrideW, tw))}
}

// A rowSink receives the averaged logits of image row y, in order: class c's values are
// row[c*stride : c*stride+w].
type rowSink func(y int, row []float32, stride int)

// progress counts forward passes for Options.Progress.
type progress struct {
	fn          func(done, total int)
	done, total int
}

func newProgress(fn func(done, total int), total int) *progress {
	return &progress{fn: fn, total: total}
}

func (p *progress) step() {
	p.done++
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
}

// input writes the window (x, y, w, h) of img, normalised and padded bottom/right to
// th×tw, into dst (3*th*tw floats).
func (m *Model) input(dst []float32, img *image.RGBA, x, y, w, h, th, tw int) error {
	chw, ph, pw, err := data.Preprocess(view(img, x, y, w, h), data.Transform{Stride: m.info.Stride}, label.Segmentation)
	if err != nil {
		return err
	}
	if ph != th || pw != tw { // a window smaller than the tile: pad to it
		clear(dst)
		for c := range 3 {
			for r := range h {
				copy(dst[(c*th+r)*tw:][:w], chw[(c*ph+r)*pw:][:w])
			}
		}
		return nil
	}
	copy(dst, chw)
	return nil
}

// wholeBatch runs images of one padded size th×tw together and hands each its rows.
func (m *Model) wholeBatch(ctx context.Context, imgs []*image.RGBA, th, tw int, sinks []rowSink) error {
	n, classes, plane := len(imgs), m.net.Config.Classes, th*tw
	in := make([]float32, n*3*plane)
	for i, img := range imgs {
		if err := m.input(in[i*3*plane:(i+1)*3*plane], img, 0, 0, img.Rect.Dx(), img.Rect.Dy(), th, tw); err != nil {
			return err
		}
	}
	return m.run(ctx, func(s *slot) error {
		logits, err := s.forward(in, n, th, tw)
		if err != nil {
			return err
		}
		for i, img := range imgs {
			base := logits[i*classes*plane:]
			for y := range img.Rect.Dy() {
				sinks[i](y, base[y*tw:], plane)
			}
		}
		return nil
	})
}

// slide runs img through the plan's windows, one row of windows after another, adding
// each window's logits into a band of rows as tall as the window; the rows above the
// next row of windows are then final, divided by their counts and handed to sink. The
// band (classes × window height × image width floats) is all the image-sized memory.
func (m *Model) slide(ctx context.Context, img *image.RGBA, p plan, prog *progress, sink rowSink) error {
	if p.whole {
		err := m.wholeBatch(ctx, []*image.RGBA{img}, p.th, p.tw, []rowSink{sink})
		if err == nil {
			prog.step()
		}
		return err
	}
	classes, W, H := m.net.Config.Classes, p.w, p.h
	cy, cx := coverCounts(p.ys, p.th, H), coverCounts(p.xs, p.tw, W)
	rowLen := classes * W
	band := make([]float32, p.th*rowLen) // band[r][c][x], r relative to top
	top := 0
	out := make([]float32, rowLen)
	emit := func(to int) { // hand rows [top, to) to sink and drop them from the band
		for y := top; y < to; y++ {
			r := band[(y-top)*rowLen:][:rowLen]
			for c := range classes {
				o, s := out[c*W:][:W], r[c*W:][:W]
				for x := range W {
					o[x] = s[x] / float32(cy[y]*cx[x])
				}
			}
			sink(y, out, W)
		}
		n := to - top
		copy(band, band[n*rowLen:])
		clear(band[len(band)-n*rowLen:])
		top = to
	}
	in := make([]float32, 3*p.th*p.tw)
	plane := p.th * p.tw
	for _, y0 := range p.ys {
		if y0 > top {
			emit(y0)
		}
		vh := min(p.th, H-y0)
		for _, x0 := range p.xs {
			vw := min(p.tw, W-x0)
			if err := m.input(in, img, x0, y0, vw, vh, p.th, p.tw); err != nil {
				return err
			}
			err := m.run(ctx, func(s *slot) error {
				logits, err := s.forward(in, 1, p.th, p.tw)
				if err != nil {
					return err
				}
				for c := range classes {
					for r := range vh {
						dst := band[r*rowLen+c*W+x0:][:vw]
						src := logits[c*plane+r*p.tw:][:vw]
						for x, v := range src {
							dst[x] += v
						}
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			prog.step()
		}
	}
	emit(H)
	return nil
}

// coverCounts is how many windows of size t at the origins cover each of n pixels.
func coverCounts(origins []int, t, n int) []int {
	c := make([]int, n)
	for _, o := range origins {
		for i := o; i < min(o+t, n); i++ {
			c[i]++
		}
	}
	return c
}

// argmaxSink writes the most probable class of each pixel (the first on ties) into mask.
func argmaxSink(mask *image.Paletted, classes int) rowSink {
	w := mask.Rect.Dx()
	best := make([]float32, w)
	return func(y int, row []float32, stride int) {
		dst := mask.Pix[y*mask.Stride:][:w]
		copy(best, row[:w])
		clear(dst)
		for c := 1; c < classes; c++ {
			for x, v := range row[c*stride:][:w] {
				if v > best[x] {
					best[x], dst[x] = v, uint8(c)
				}
			}
		}
	}
}

// softmaxSink writes the softmax of each pixel's logits into p (scaled by weight and
// added when add is set).
func softmaxSink(p *Probs, add bool, weight float32) rowSink {
	e := make([]float64, p.Classes)
	return func(y int, row []float32, stride int) {
		for x := range p.W {
			mx := math.Inf(-1)
			for c := range p.Classes {
				mx = max(mx, float64(row[c*stride+x]))
			}
			var sum float64
			for c := range p.Classes {
				e[c] = math.Exp(float64(row[c*stride+x]) - mx)
				sum += e[c]
			}
			for c := range p.Classes {
				v := float32(e[c]/sum) * weight
				i := (c*p.H+y)*p.W + x
				if add {
					p.Data[i] += v
				} else {
					p.Data[i] = v
				}
			}
		}
	}
}

// argmaxProbs writes the most probable class of each pixel of p into mask.
func argmaxProbs(p *Probs, mask *image.Paletted) {
	plane := p.H * p.W
	for y := range p.H {
		dst := mask.Pix[y*mask.Stride:][:p.W]
		for x := range p.W {
			i := y*p.W + x
			best, bc := p.Data[i], 0
			for c := 1; c < p.Classes; c++ {
				if v := p.Data[c*plane+i]; v > best {
					best, bc = v, c
				}
			}
			dst[x] = uint8(bc)
		}
	}
}

// ttaProbs averages the softmax probabilities of every scale, plain and mirrored, each
// pass resized back to the image's size (bilinear, on the logits, before the softmax).
func (m *Model) ttaProbs(ctx context.Context, src *image.RGBA) (*Probs, error) {
	h, w := src.Rect.Dy(), src.Rect.Dx()
	classes := m.net.Config.Classes
	flips := []bool{false, true}
	if m.opt.NoFlip {
		flips = flips[:1]
	}
	type aug struct {
		img  *image.RGBA
		plan plan
		flip bool
	}
	var augs []aug
	total := 0
	for _, s := range m.opt.Scales {
		sh, sw := max(1, int(math.Round(float64(h)*s))), max(1, int(math.Round(float64(w)*s)))
		for _, f := range flips {
			a := aug{plan: m.plan(sh, sw), flip: f}
			total += a.plan.passes()
			augs = append(augs, a)
		}
	}
	p := &Probs{Classes: classes, H: h, W: w, Data: make([]float32, classes*h*w)}
	prog := newProgress(m.opt.Progress, total)
	weight := 1 / float32(len(augs))
	for _, a := range augs {
		img := src
		if a.plan.h != h || a.plan.w != w {
			img = image.NewRGBA(image.Rect(0, 0, a.plan.w, a.plan.h))
			draw.BiLinear.Scale(img, img.Rect, src, src.Rect, draw.Src, nil)
		}
		if a.flip {
			img = mirror(img)
		}
		sink := resizeSink(softmaxSink(p, true, weight), classes, a.plan.h, a.plan.w, h, w, a.flip)
		if err := m.slide(ctx, img, a.plan, prog, sink); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// mirror returns img mirrored left-right.
func mirror(img *image.RGBA) *image.RGBA {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		s, d := img.Pix[y*img.Stride:][:4*w], out.Pix[y*out.Stride:][:4*w]
		for x := range w {
			copy(d[4*(w-1-x):4*(w-x)], s[4*x:4*x+4])
		}
	}
	return out
}

// resizeSink takes rows of an sh×sw logit map in order and hands next the rows of the
// map resized to h×w (bilinear, half-pixel centres, as align_corners=False), mirrored
// back left-right when flip is set. It keeps the last two source rows.
func resizeSink(next rowSink, classes, sh, sw, h, w int, flip bool) rowSink {
	if sh == h && sw == w && !flip {
		return next
	}
	src := func(o, n, sn int) (i0, i1 int, f float32) {
		s := (float64(o)+0.5)*float64(sn)/float64(n) - 0.5
		s = max(s, 0)
		i0 = min(int(s), sn-1)
		i1 = min(i0+1, sn-1)
		return i0, i1, float32(s - float64(i0))
	}
	x0s, x1s, fxs := make([]int, w), make([]int, w), make([]float32, w)
	for x := range w {
		sx := x
		if flip {
			sx = w - 1 - x
		}
		x0s[x], x1s[x], fxs[x] = src(sx, w, sw)
	}
	rows := [2][]float32{make([]float32, classes*sw), make([]float32, classes*sw)}
	have := -1 // the latest source row received
	next0 := 0 // the next output row to produce
	out := make([]float32, classes*w)
	return func(k int, row []float32, stride int) {
		r := rows[k%2]
		for c := range classes {
			copy(r[c*sw:][:sw], row[c*stride:][:sw])
		}
		have = k
		for next0 < h {
			y0, y1, fy := src(next0, h, sh)
			if y1 > have {
				return
			}
			a, b := rows[y0%2], rows[y1%2]
			for c := range classes {
				ac, bc, o := a[c*sw:][:sw], b[c*sw:][:sw], out[c*w:][:w]
				for x := range w {
					i0, i1, fx := x0s[x], x1s[x], fxs[x]
					top := ac[i0] + (ac[i1]-ac[i0])*fx
					bot := bc[i0] + (bc[i1]-bc[i0])*fx
					o[x] = top + (bot-top)*fy
				}
			}
			next(next0, out, w)
			next0++
		}
	}
}

// Colors returns the mask colour of every class (the palette's first entries), for
// legends.
func (m *Model) Colors() []color.RGBA {
	out := make([]color.RGBA, len(m.names))
	for i := range out {
		out[i] = color.RGBAModel.Convert(m.palette[i]).(color.RGBA)
	}
	return out
}
