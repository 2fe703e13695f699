package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vggo/vggo/label"
)

// DemoConfig sizes the demo dataset. The zero value means the defaults.
type DemoConfig struct {
	Train, Val int    // images per split (default 200 and 50)
	Size       int    // image side in pixels (default 128)
	Seed       uint64 // the images are a function of the seed (default 0)
}

func (c DemoConfig) withDefaults() DemoConfig {
	if c.Train == 0 {
		c.Train = 200
	}
	if c.Val == 0 {
		c.Val = 50
	}
	if c.Size == 0 {
		c.Size = 128
	}
	return c
}

// DemoClasses returns the VOC class indices drawn in the demo dataset: aeroplane
// (blue triangles), bus (yellow striped rectangles), cat (grainy orange discs), dog
// (green checkered diamonds) and person (magenta upright ellipses), on
// low-saturation noisy textured backgrounds (class 0).
func DemoClasses() []int { return []int{1, 6, 8, 12, 15} }

const (
	demoMarker  = "vggo-demo.txt"
	demoFormat  = 1
	demoJPEGQ   = 90
	demoPending = "vggo demo dataset (being written)\n"
)

func (c DemoConfig) marker() string {
	return fmt.Sprintf("vggo demo dataset, format %d: train %d, val %d, size %d, seed %d\ncomplete\n",
		demoFormat, c.Train, c.Val, c.Size, c.Seed)
}

func demoID(i int) string { return fmt.Sprintf("demo_%04d", i) }

// WriteDemo writes a small, learnable VOC-style segmentation dataset into dir, in
// the exact VOC layout, so that OpenVOC(dir, "train", VOCOptions{}) reads it:
//
//	dir/JPEGImages/demo_NNNN.jpg          Size x Size RGB JPEG
//	dir/SegmentationClass/demo_NNNN.png   8-bit palette PNG, VOC colormap
//	dir/ImageSets/Segmentation/{train,val,trainval}.txt
//	dir/vggo-demo.txt                     marker, written last
//
// Each image holds 2 to 4 shapes of the DemoClasses on a textured background;
// object boundaries are labelled 255, as in VOC. The output is deterministic: the
// same config gives the same bytes. dir must be new, empty, or an earlier demo
// dir: WriteDemo refuses to write over anything else.
func WriteDemo(dir string, cfg DemoConfig) error {
	cfg = cfg.withDefaults()
	if cfg.Train < 1 || cfg.Val < 1 || cfg.Size < 16 || cfg.Size > 4096 {
		return fmt.Errorf("data: demo: train %d, val %d, size %d: want train and val >= 1, 16 <= size <= 4096",
			cfg.Train, cfg.Val, cfg.Size)
	}
	if err := claimDemoDir(dir); err != nil {
		return err
	}
	for _, sub := range []string{"JPEGImages", "SegmentationClass", "ImageSets"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("data: demo: %w", err)
		}
	}
	for _, sub := range []string{"JPEGImages", "SegmentationClass", filepath.Join("ImageSets", "Segmentation")} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("data: demo: %w", err)
		}
	}
	n := cfg.Train + cfg.Val
	errs := make([]error, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			var jb, pb bytes.Buffer
			for i := w; i < n; i += workers {
				errs[i] = writeDemoSample(dir, cfg, i, &jb, &pb)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("data: demo: %w", err)
	}
	var train, val strings.Builder
	for i := range n {
		if i < cfg.Train {
			fmt.Fprintln(&train, demoID(i))
		} else {
			fmt.Fprintln(&val, demoID(i))
		}
	}
	splits := filepath.Join(dir, "ImageSets", "Segmentation")
	for name, text := range map[string]string{"train": train.String(), "val": val.String(), "trainval": train.String() + val.String()} {
		if err := os.WriteFile(filepath.Join(splits, name+".txt"), []byte(text), 0o644); err != nil {
			return fmt.Errorf("data: demo: %w", err)
		}
	}
	tmp := filepath.Join(dir, demoMarker+".tmp")
	if err := os.WriteFile(tmp, []byte(cfg.marker()), 0o644); err != nil {
		return fmt.Errorf("data: demo: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, demoMarker)); err != nil {
		return fmt.Errorf("data: demo: %w", err)
	}
	return nil
}

// claimDemoDir creates dir, or checks that it is empty or an earlier demo dir,
// and marks it as a demo dir being written.
func claimDemoDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("data: demo: %w", err)
		}
	case err != nil:
		return fmt.Errorf("data: demo: %w", err)
	case len(ents) > 0:
		b, err := os.ReadFile(filepath.Join(dir, demoMarker))
		if err != nil || !strings.HasPrefix(string(b), "vggo demo dataset") {
			return fmt.Errorf("data: demo: %s is not empty and holds no %s: refusing to write over it (choose a new or empty folder)", dir, demoMarker)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, demoMarker), []byte(demoPending), 0o644); err != nil {
		return fmt.Errorf("data: demo: %w", err)
	}
	return nil
}

func writeDemoSample(dir string, cfg DemoConfig, i int, jb, pb *bytes.Buffer) error {
	img, mask := demoSample(cfg, i)
	jb.Reset()
	pb.Reset()
	if err := jpeg.Encode(jb, img, &jpeg.Options{Quality: demoJPEGQ}); err != nil {
		return err
	}
	if err := EncodeMask(pb, mask); err != nil {
		return err
	}
	id := demoID(i)
	if err := os.WriteFile(filepath.Join(dir, "JPEGImages", id+".jpg"), jb.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "SegmentationClass", id+".png"), pb.Bytes(), 0o644)
}

// EnsureDemo makes dir hold the demo dataset of cfg: an existing complete one is
// reused (written is false), anything less, such as an interrupted write, is
// written again (see WriteDemo).
func EnsureDemo(dir string, cfg DemoConfig) (written bool, err error) {
	cfg = cfg.withDefaults()
	if demoComplete(dir, cfg) {
		return false, nil
	}
	return true, WriteDemo(dir, cfg)
}

func demoComplete(dir string, cfg DemoConfig) bool {
	b, err := os.ReadFile(filepath.Join(dir, demoMarker))
	if err != nil || string(b) != cfg.marker() {
		return false
	}
	for _, split := range []string{"train", "val", "trainval"} {
		if st, err := os.Stat(filepath.Join(dir, "ImageSets", "Segmentation", split+".txt")); err != nil || st.Size() == 0 {
			return false
		}
	}
	for i := range cfg.Train + cfg.Val {
		for _, p := range []string{filepath.Join("JPEGImages", demoID(i)+".jpg"), filepath.Join("SegmentationClass", demoID(i)+".png")} {
			if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Size() == 0 {
				return false
			}
		}
	}
	return true
}

// demoLook is how a demo class is drawn.
type demoLook struct {
	class int
	rgb   [3]float64
}

// demoSample draws image i: a textured background and 2-4 class shapes.
func demoSample(cfg DemoConfig, i int) (*image.RGBA, *image.Gray) {
	r := newRNG(cfg.Seed, streamDemo, i, 0)
	S := cfg.Size
	img := image.NewRGBA(image.Rect(0, 0, S, S))
	lab := image.NewGray(image.Rect(0, 0, S, S))
	col := make([][3]float64, S*S)

	// Background: a low-saturation tone, two sinusoidal ripples and pixel noise.
	g := r.uniform(70, 160)
	base := [3]float64{g + r.uniform(-12, 12), g + r.uniform(-12, 12), g + r.uniform(-12, 12)}
	fx, fy := r.uniform(0.05, 0.3), r.uniform(0.05, 0.3)
	ph1, ph2 := r.uniform(0, 2*math.Pi), r.uniform(0, 2*math.Pi)
	rippleX, rippleY := make([]float64, S), make([]float64, S)
	for k := range S {
		rippleX[k] = 14 * math.Sin(fx*float64(k)+ph1)
		rippleY[k] = 10 * math.Sin(fy*float64(k)+ph2)
	}
	for y := range S {
		for x := range S {
			t := rippleX[x] + rippleY[y]
			for c := range 3 {
				col[y*S+x][c] = base[c] + t + r.uniform(-16, 16)
			}
		}
	}

	looks := []demoLook{
		{1, [3]float64{60, 110, 225}},  // aeroplane: blue triangle
		{6, [3]float64{235, 195, 40}},  // bus: yellow rectangle, dark stripes
		{8, [3]float64{230, 120, 30}},  // cat: orange disc, coarse grain
		{12, [3]float64{50, 170, 70}},  // dog: green diamond, checkered
		{15, [3]float64{205, 50, 160}}, // person: magenta upright ellipse
	}
	for range 2 + r.intn(3) {
		lk := looks[r.intn(len(looks))]
		rad := r.uniform(0.12, 0.26) * float64(S)
		cx := r.uniform(0.5*rad, float64(S)-0.5*rad)
		cy := r.uniform(0.5*rad, float64(S)-0.5*rad)
		var jit [3]float64
		for c := range jit {
			jit[c] = r.uniform(-18, 18)
		}
		x0, x1 := max(0, int(cx-rad)), min(S, int(cx+rad)+1)
		y0, y1 := max(0, int(cy-rad)), min(S, int(cy+rad)+1)
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				dx, dy := (float64(x)+0.5-cx)/rad, (float64(y)+0.5-cy)/rad
				if !demoInside(lk.class, dx, dy) {
					continue
				}
				k := 1.0 // class texture
				switch lk.class {
				case 6:
					if (y-y0)%6 < 2 {
						k = 0.55
					}
				case 8:
					k = r.uniform(0.75, 1.2)
				case 12:
					if ((x-x0)/4+(y-y0)/4)%2 == 0 {
						k = 0.7
					}
				case 15:
					k = 0.8 + 0.3*(dy+1)/2
				}
				for c := range 3 {
					col[y*S+x][c] = (lk.rgb[c]+jit[c])*k + r.uniform(-8, 8)
				}
				lab.Pix[y*S+x] = uint8(lk.class)
			}
		}
	}

	for p, c := range col {
		for k := range 3 {
			img.Pix[4*p+k] = uint8(math.Round(math.Max(0, math.Min(255, c[k]))))
		}
		img.Pix[4*p+3] = 255
	}
	// As in VOC, an object's outline (its pixels touching another label) is ignored.
	src := append([]uint8(nil), lab.Pix...)
	for y := range S {
		for x := range S {
			v := src[y*S+x]
			if v == 0 {
				continue
			}
			if (x > 0 && src[y*S+x-1] != v) || (x < S-1 && src[y*S+x+1] != v) ||
				(y > 0 && src[(y-1)*S+x] != v) || (y < S-1 && src[(y+1)*S+x] != v) {
				lab.Pix[y*S+x] = label.Ignore
			}
		}
	}
	return img, lab
}

// demoInside reports whether (dx, dy), in units of the shape's radius from its
// centre, is inside the class's shape.
func demoInside(class int, dx, dy float64) bool {
	switch class {
	case 1: // triangle, apex up
		return dy <= 0.8 && dy >= -0.9 && math.Abs(dx) <= (dy+0.9)*0.6
	case 6: // wide rectangle
		return math.Abs(dx) <= 0.95 && math.Abs(dy) <= 0.6
	case 8: // disc
		return dx*dx+dy*dy <= 0.85
	case 12: // diamond
		return math.Abs(dx)+math.Abs(dy) <= 0.95
	case 15: // upright ellipse
		return dx*dx/0.3+dy*dy <= 0.95
	}
	return false
}
