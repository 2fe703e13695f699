package infer

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
)

// newUNet is an untrained width-1/16 vgg19-unet (stride 16) with 21 classes.
func newUNet(t testing.TB, opt Options) *Model {
	t.Helper()
	net, err := graphs.New(graphs.Config{Arch: "vgg19-unet", Mult: 1.0 / 16, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(net, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// noise is a w×h image of seeded random colours.
func noise(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

func TestWindows(t *testing.T) {
	cases := []struct {
		n, t, s int
		want    []int
	}{
		{100, 512, 341, []int{0}},
		{512, 512, 341, []int{0}},
		{513, 512, 341, []int{0, 1}},
		{1000, 512, 341, []int{0, 341, 488}},
		{64, 32, 32, []int{0, 32}},
		{64, 32, 16, []int{0, 16, 32}},
	}
	for _, c := range cases {
		if got := windows(c.n, c.t, c.s); !slices.Equal(got, c.want) {
			t.Errorf("windows(%d, %d, %d) = %v, want %v", c.n, c.t, c.s, got, c.want)
		}
	}
	// A 4000x3000 photo in 512 tiles at 341: 12 x 9 windows.
	if nx, ny := len(windows(4000, 512, 341)), len(windows(3000, 512, 341)); nx != 12 || ny != 9 {
		t.Errorf("4000x3000: %dx%d windows, want 12x9", nx, ny)
	}
}

// TestSlideAverages checks the band accumulation against a brute-force one: every
// window run on its own, its logits added into an image-sized buffer, divided by the
// number of windows covering each pixel.
func TestSlideAverages(t *testing.T) {
	m := newUNet(t, Options{Mode: Slide, TileH: 32, TileW: 48, StrideH: 16, StrideW: 20})
	const W, H = 90, 70 // not multiples of the stride: the last windows are flush
	img := noise(W, H, 1)
	p := m.plan(H, W)
	if p.whole || p.th != 32 || p.tw != 48 || len(p.ys) != 4 || len(p.xs) != 4 {
		t.Fatalf("plan %+v", p)
	}
	classes := m.net.Config.Classes
	sum := make([]float32, classes*H*W)
	cnt := make([]float32, H*W)
	in := make([]float32, 3*p.th*p.tw)
	for _, y0 := range p.ys {
		for _, x0 := range p.xs {
			if err := m.input(in, img, x0, y0, min(p.tw, W-x0), min(p.th, H-y0), p.th, p.tw); err != nil {
				t.Fatal(err)
			}
			err := m.run(context.Background(), func(s *slot) error {
				lg, err := s.forward(in, 1, p.th, p.tw)
				for c := range classes {
					for y := y0; y < min(y0+p.th, H); y++ {
						for x := x0; x < min(x0+p.tw, W); x++ {
							sum[(c*H+y)*W+x] += lg[(c*p.th+y-y0)*p.tw+x-x0]
						}
					}
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for y := y0; y < min(y0+p.th, H); y++ {
				for x := x0; x < min(x0+p.tw, W); x++ {
					cnt[y*W+x]++
				}
			}
		}
	}
	rows := 0
	err := m.slide(context.Background(), img, p, newProgress(nil, p.passes()), func(y int, row []float32, stride int) {
		if y != rows {
			t.Fatalf("row %d handed after %d rows", y, rows)
		}
		rows++
		for c := range classes {
			for x := range W {
				want := sum[(c*H+y)*W+x] / cnt[y*W+x]
				if got := row[c*stride+x]; math.Abs(float64(got-want)) > 1e-5*(1+math.Abs(float64(want))) {
					t.Fatalf("class %d pixel (%d,%d): %g, want %g", c, x, y, got, want)
				}
			}
		}
	})
	if err != nil || rows != H {
		t.Fatalf("slide: %v after %d rows of %d", err, rows, H)
	}
}

// TestSlideOneWindowIsWhole: a tile as large as the padded image gives the whole-image
// mask, and SegmentBatch gives what Segment gives.
func TestSlideOneWindowIsWhole(t *testing.T) {
	m := newUNet(t, Options{})
	img := noise(40, 30, 2) // padded to 48x32
	whole, err := m.Segment(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Rect != img.Rect {
		t.Fatalf("mask bounds %v, want %v", whole.Rect, img.Rect)
	}
	s, _ := m.With(Options{Mode: Slide, TileH: 32, TileW: 48})
	slid, err := s.Segment(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole.Pix, slid.Pix) {
		t.Error("one-window slide differs from whole")
	}
	b, _ := m.With(Options{Batch: 3})
	imgs := []image.Image{img, noise(40, 30, 3), noise(20, 20, 4), noise(40, 30, 5)}
	masks, err := b.SegmentBatch(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, im := range imgs {
		one, err := m.Segment(context.Background(), im)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one.Pix, masks[i].Pix) {
			t.Errorf("image %d: batched mask differs", i)
		}
	}
}

// TestSubImageOrigin: a sub-image's mask keeps its bounds and matches a copy at 0,0.
func TestSubImageOrigin(t *testing.T) {
	m := newUNet(t, Options{})
	big := noise(64, 64, 6)
	sub := big.SubImage(image.Rect(10, 20, 42, 52)).(*image.RGBA)
	cp := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			cp.SetRGBA(x, y, sub.RGBAAt(10+x, 20+y))
		}
	}
	a, err := m.Segment(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Segment(context.Background(), cp)
	if a.Rect != sub.Rect || !slices.Equal(a.Pix, b.Pix) {
		t.Errorf("sub-image mask %v differs from the copy's", a.Rect)
	}
	// Other image types are converted.
	g := image.NewGray(image.Rect(0, 0, 32, 16))
	if mk, err := m.Segment(context.Background(), g); err != nil || mk.Rect != g.Rect {
		t.Errorf("gray image: %v, %v", err, mk)
	}
}

// TestResizeSink checks the streamed bilinear resize (and mirror) against a direct one.
func TestResizeSink(t *testing.T) {
	const classes, sh, sw, h, w = 2, 5, 7, 11, 3
	r := rand.New(rand.NewPCG(7, 7))
	src := make([]float32, classes*sh*sw)
	for i := range src {
		src[i] = r.Float32()
	}
	coord := func(o, n, sn int) float64 { return max((float64(o)+0.5)*float64(sn)/float64(n)-0.5, 0) }
	at := func(c int, y, x float64) float32 {
		y0, x0 := min(int(y), sh-1), min(int(x), sw-1)
		y1, x1 := min(y0+1, sh-1), min(x0+1, sw-1)
		fy, fx := float32(y-float64(y0)), float32(x-float64(x0))
		v := func(yy, xx int) float32 { return src[(c*sh+yy)*sw+xx] }
		top := v(y0, x0) + (v(y0, x1)-v(y0, x0))*fx
		bot := v(y1, x0) + (v(y1, x1)-v(y1, x0))*fx
		return top + (bot-top)*fy
	}
	for _, flip := range []bool{false, true} {
		got := 0
		sink := resizeSink(func(y int, row []float32, stride int) {
			if y != got {
				t.Fatalf("row %d after %d", y, got)
			}
			got++
			for c := range classes {
				for x := range w {
					sx := x
					if flip {
						sx = w - 1 - x
					}
					want := at(c, coord(y, h, sh), coord(sx, w, sw))
					if d := row[c*stride+x] - want; d > 1e-6 || d < -1e-6 {
						t.Fatalf("flip %v: (%d,%d,%d) = %g, want %g", flip, c, x, y, row[c*stride+x], want)
					}
				}
			}
		}, classes, sh, sw, h, w, flip)
		row := make([]float32, classes*sw)
		for y := range sh {
			for c := range classes {
				copy(row[c*sw:], src[(c*sh+y)*sw:][:sw])
			}
			sink(y, row, sw)
		}
		if got != h {
			t.Errorf("flip %v: %d rows out, want %d", flip, got, h)
		}
	}
}

// TestTTA: probabilities sum to one at every pixel; one scale without flip is the plain
// softmax; and a mirror-symmetric image gives a mirror-symmetric TTA mask.
func TestTTA(t *testing.T) {
	m := newUNet(t, Options{})
	img := noise(48, 32, 8)
	plain, err := m.Probabilities(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := m.With(Options{TTA: true, Scales: []float64{1}, NoFlip: true})
	p1, err := one.Probabilities(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain.Data {
		if d := plain.Data[i] - p1.Data[i]; d > 1e-6 || d < -1e-6 {
			t.Fatalf("TTA at scale 1 differs from plain at %d: %g vs %g", i, p1.Data[i], plain.Data[i])
		}
	}
	passes := 0
	tta, _ := m.With(Options{TTA: true, Scales: []float64{0.5, 1, 1.5}, Progress: func(d, total int) { passes = total }})
	p, err := tta.Probabilities(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if passes != 6 {
		t.Errorf("%d passes, want 6 (3 scales x 2 flips)", passes)
	}
	for y := range p.H {
		for x := range p.W {
			var s float32
			for c := range p.Classes {
				s += p.At(c, x, y)
			}
			if s < 0.999 || s > 1.001 {
				t.Fatalf("pixel (%d,%d): probabilities sum to %g", x, y, s)
			}
		}
	}
	sym := noise(48, 32, 9)
	for y := range 32 {
		for x := range 24 {
			sym.SetRGBA(47-x, y, sym.RGBAAt(x, y))
		}
	}
	mask, err := tta.Segment(context.Background(), sym)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 32 {
		for x := range 24 {
			if mask.ColorIndexAt(x, y) != mask.ColorIndexAt(47-x, y) {
				t.Fatalf("TTA mask of a symmetric image is not symmetric at (%d,%d)", x, y)
			}
		}
	}
}

// TestConcurrent: several goroutines on one model (two graphs) get what one gets alone.
func TestConcurrent(t *testing.T) {
	m := newUNet(t, Options{Concurrency: 2, Mode: Slide, TileH: 32, TileW: 32})
	imgs := []*image.RGBA{noise(64, 48, 10), noise(48, 48, 11), noise(32, 80, 12)}
	want := make([][]uint8, len(imgs))
	for i, img := range imgs {
		mk, err := m.Segment(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = mk.Pix
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := g % len(imgs)
			mk, err := m.Segment(context.Background(), imgs[i])
			if err == nil && !slices.Equal(mk.Pix, want[i]) {
				err = errors.New("mask differs from the sequential one")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCancelBetweenTiles: a cancelled context stops a slide after the tile in flight.
func TestCancelBetweenTiles(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("stop")
	done := 0
	m := newUNet(t, Options{Mode: Slide, TileH: 16, TileW: 16, Progress: func(d, total int) {
		done = d
		if d == 2 {
			cancel(cause)
		}
	}})
	_, err := m.Segment(ctx, noise(64, 64, 13))
	if !errors.Is(err, cause) || done != 2 {
		t.Errorf("got %v after %d tiles, want the cause after 2", err, done)
	}
}

func TestClassify(t *testing.T) {
	net, err := graphs.New(graphs.Config{Arch: "vgg11", Mult: 1.0 / 64, Classes: 7, InputH: 32, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(net, nil, Options{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	imgs := []image.Image{noise(50, 40, 1), noise(32, 32, 2), noise(90, 33, 3)}
	tops, err := m.ClassifyBatch(context.Background(), imgs, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, top := range tops {
		if len(top) != 7 {
			t.Fatalf("image %d: %d classes, want 7 (k capped at the class count)", i, len(top))
		}
		var s float64
		for j, c := range top {
			s += c.Prob
			if j > 0 && c.Prob > top[j-1].Prob {
				t.Errorf("image %d: not sorted: %v", i, top)
			}
		}
		one, _ := m.Classify(context.Background(), imgs[i], 1)
		if math.Abs(s-1) > 1e-5 || one[0] != top[0] {
			t.Errorf("image %d: probabilities sum to %g; alone %v, batched %v", i, s, one[0], top[0])
		}
	}
	if _, err := m.Segment(context.Background(), imgs[0]); !errors.Is(err, ErrTask) {
		t.Errorf("Segment on a classifier: %v, want ErrTask", err)
	}
	// A mirror-symmetric image: TTA (image + mirror) gives the plain probabilities.
	sym := noise(32, 32, 4)
	for y := range 32 {
		for x := range 16 {
			sym.SetRGBA(31-x, y, sym.RGBAAt(x, y))
		}
	}
	tta, _ := m.With(Options{TTA: true})
	a, _ := m.Probabilities(context.Background(), sym)
	b, _ := tta.Probabilities(context.Background(), sym)
	for c := range a.Data {
		if d := a.Data[c] - b.Data[c]; d > 1e-6 || d < -1e-6 {
			t.Errorf("class %d: TTA %g, plain %g", c, b.Data[c], a.Data[c])
		}
	}
}

func TestOptionErrors(t *testing.T) {
	net, _ := graphs.New(graphs.Config{Arch: "vgg16-segnet", Mult: 1.0 / 32})
	cases := []struct {
		opt  Options
		want string
	}{
		{Options{TileH: 100, TileW: 100}, "multiples of 32 (try 96x96)"},
		{Options{TileH: 64, TileW: 64, StrideH: 65, StrideW: 10}, "stride 65x10"},
		{Options{Mode: Mode(7)}, "unknown mode"},
		{Options{Scales: []float64{0}}, "TTA scale 0"},
		{Options{Batch: -1}, "batch -1"},
	}
	for _, c := range cases {
		_, err := New(net, nil, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.opt, err, c.want)
		}
	}
	m, err := New(net, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.With(Options{Concurrency: 3}); err == nil {
		t.Error("With changing Concurrency: no error")
	}
	if _, err := m.Classify(context.Background(), noise(8, 8, 1), 1); !errors.Is(err, ErrTask) {
		t.Errorf("Classify on a segmenter: %v", err)
	}
	if _, err := ParseMode("tiles"); err == nil {
		t.Error("ParseMode(tiles): no error")
	}
	if m.Task() != label.Segmentation || len(m.ClassNames()) != 21 || m.Info().Stride != 32 {
		t.Errorf("info: %v %d %+v", m.Task(), len(m.ClassNames()), m.Info())
	}
}

// TestMaskPalette: the mask's palette is VOC's, so it encodes as VOC masks do.
func TestMaskPalette(t *testing.T) {
	m := newUNet(t, Options{})
	mk, err := m.Segment(context.Background(), noise(16, 16, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(mk.Palette) != 256 || mk.Palette[15] != color.Color(data.VOCColor(15)) {
		t.Errorf("palette %d entries, 15 = %v", len(mk.Palette), mk.Palette[15])
	}
}

// TestBatchShapes: a call runs full batches and then single images, so one image size
// compiles at most two graphs (a graph's batch size is fixed).
func TestBatchShapes(t *testing.T) {
	m := newUNet(t, Options{Batch: 3, Graphs: 2})
	var imgs []image.Image
	for i := range 5 {
		imgs = append(imgs, noise(32, 32, uint64(i)))
	}
	for _, n := range []int{5, 2, 4, 1} {
		if _, err := m.SegmentBatch(context.Background(), imgs[:n]); err != nil {
			t.Fatal(err)
		}
	}
	s := <-m.slots
	defer func() { m.slots <- s }()
	var keys [][3]int
	for k := range s.cache {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [3]int) int { return a[0] - b[0] })
	if !slices.Equal(keys, [][3]int{{1, 32, 32}, {3, 32, 32}}) {
		t.Errorf("compiled shapes %v, want batch 1 and 3 of 32x32", keys)
	}
}
