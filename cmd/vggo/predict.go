package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/metrics"
	"github.com/vggo/vggo/train"
)

func predictCmd() *command {
	c := &command{
		name:  "predict",
		usage: "--checkpoint FILE --input IMAGE|DIR [--out DIR] [--overlay] [--json]",
		short: "run a model on images: masks for segmentation, top-5 for classifiers",
		long: `Predict runs a model on one image or every JPEG/PNG in a directory.

Segmentation models write one 8-bit palette PNG per image into --out, at the image's own
resolution, with the VOC colormap (pixel value = class index), named after the image
(2007_000032.jpg -> 2007_000032.png). --overlay also writes <name>_overlay.jpg, the image
blended with the coloured mask.

Classifiers print the five most probable classes of each image; --json prints one JSON
object per line instead: {"image", "top5": [{"class", "index", "prob"}], "probs": [...]}.

Examples:
	vggo predict --checkpoint runs/unet/best.safetensors --input photo.jpg --out masks
	vggo predict --checkpoint runs/unet/best.safetensors --input ~/VOCdevkit/VOC2012/JPEGImages --out masks --overlay
	vggo predict --checkpoint runs/vgg16/best.safetensors --input cat.jpg --json`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		ckpt := fs.String("checkpoint", "", "training checkpoint or weights file (.safetensors)")
		input := fs.String("input", "", "an image file or a directory of images")
		out := fs.String("out", "predictions", "output directory for masks (segmentation)")
		overlay := fs.Bool("overlay", false, "segmentation: also write the image blended with the mask as JPEG")
		asJSON := fs.Bool("json", false, "classifiers: one JSON object per image")
		mf := addModelFlags(fs)
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		if *input == "" {
			return usagef("--input is required")
		}
		m, names, err := mf.load(*ckpt)
		if err != nil {
			return err
		}
		paths, err := imagePaths(*input)
		if err != nil {
			return err
		}
		seg := m.Info.Task == label.Segmentation
		if seg {
			if err := os.MkdirAll(*out, 0o755); err != nil {
				return err
			}
		}
		pr := &predictor{e: e, m: m, names: names, ev: train.NewEvaluator(m), out: *out, overlay: *overlay, asJSON: *asJSON}
		defer pr.ev.Close()
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := pr.predict(p); err != nil {
				return err
			}
		}
		return nil
	}
	return c
}

// predictor runs a model on image files and writes or prints what it predicts.
type predictor struct {
	e       *env
	m       *graphs.Model
	names   []string
	ev      *train.Evaluator
	out     string
	overlay bool
	asJSON  bool
}

func (pr *predictor) predict(p string) error {
	m := pr.m
	seg := m.Info.Task == label.Segmentation
	img, err := data.ReadImage(p)
	if err != nil {
		return err
	}
	chw, h, w, err := data.Preprocess(img, data.Transform{Stride: m.Info.Stride, CropH: m.Config.InputH, CropW: m.Config.InputW}, m.Info.Task)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	logits, err := pr.ev.Logits(chw, 1, h, w)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	classes := m.Config.Classes
	if !seg {
		return printTop5(pr.e, p, logits[:classes], pr.names, pr.asJSON)
	}
	pred := make([]int, h*w)
	if err := metrics.ArgmaxNCHW(logits, 1, classes, h, w, pred); err != nil {
		return err
	}
	b := img.Bounds()
	mask := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			mask.Pix[y*mask.Stride+x] = uint8(pred[y*w+x])
		}
	}
	base := filepath.Join(pr.out, strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)))
	if err := writeMaskPNG(base+".png", mask); err != nil {
		return err
	}
	if pr.overlay {
		if err := writeOverlay(base+"_overlay.jpg", img, mask); err != nil {
			return err
		}
	}
	fmt.Fprintf(pr.e.stdout, "%s -> %s\n", p, base+".png")
	return nil
}

// imagePaths is the image itself, or the JPEG and PNG files of a directory, sorted.
func imagePaths(input string) ([]string, error) {
	st, err := os.Stat(input)
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	if !st.IsDir() {
		return []string{input}, nil
	}
	entries, err := os.ReadDir(input)
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	var out []string
	for _, en := range entries {
		switch strings.ToLower(filepath.Ext(en.Name())) {
		case ".jpg", ".jpeg", ".png":
			if !en.IsDir() {
				out = append(out, filepath.Join(input, en.Name()))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--input: %s holds no .jpg, .jpeg or .png file", input)
	}
	sort.Strings(out)
	return out, nil
}

func writeMaskPNG(path string, mask *image.Gray) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := data.EncodeMask(f, mask); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// writeOverlay blends the image half and half with the class colours (background and
// ignored pixels left as they are).
func writeOverlay(path string, img *image.RGBA, mask *image.Gray) error {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			p := img.RGBAAt(b.Min.X+x, b.Min.Y+y)
			k := mask.Pix[y*mask.Stride+x]
			if k != 0 && k != 255 {
				c := data.VOCColor(k)
				p = color.RGBA{uint8((uint16(p.R) + uint16(c.R)) / 2), uint8((uint16(p.G) + uint16(c.G)) / 2), uint8((uint16(p.B) + uint16(c.B)) / 2), 255}
			}
			out.SetRGBA(x, y, p)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(f, out, &jpeg.Options{Quality: 90}); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

type classProb struct {
	Class string  `json:"class"`
	Index int     `json:"index"`
	Prob  float64 `json:"prob"`
}

func printTop5(e *env, path string, logits []float32, names []string, asJSON bool) error {
	probs := make([]float32, len(logits))
	if err := metrics.Softmax(logits, 1, len(logits), probs); err != nil {
		return err
	}
	var top []classProb
	for _, i := range metrics.TopClasses(probs, 5) {
		top = append(top, classProb{Class: names[i], Index: i, Prob: float64(probs[i])})
	}
	if asJSON {
		b, err := json.Marshal(struct {
			Image string      `json:"image"`
			Top5  []classProb `json:"top5"`
			Probs []float32   `json:"probs"`
		}{path, top, probs})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", path)
	for _, t := range top {
		fmt.Fprintf(e.stdout, "  %6.2f%%  %s\n", 100*t.Prob, t.Class)
	}
	return nil
}
