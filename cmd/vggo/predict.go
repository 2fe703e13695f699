package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/infer"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/train"
)

func predictCmd() *command {
	c := &command{
		name:  "predict",
		usage: "--checkpoint FILE --input IMAGE|DIR [--out DIR] [--overlay] [--json] [--mode auto|whole|slide] [--tile HxW] [--stride HxW] [--tta]",
		short: "run a model on images: masks for segmentation, top-5 for classifiers",
		long:  predictHelp,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		ckpt := fs.String("checkpoint", "", "training checkpoint or weights file (.safetensors)")
		input := fs.String("input", "", "an image file or a directory of images")
		out := fs.String("out", "predictions", "output directory for masks (segmentation)")
		overlay := fs.Bool("overlay", false, "segmentation: also write the image blended with the mask as JPEG")
		asJSON := fs.Bool("json", false, "one JSON object per image: the top-5 classes, or the mask's path and classes present")
		mf := addModelFlags(fs)
		inf := addInferFlags(fs)
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		if *input == "" {
			return usagef("--input is required")
		}
		opt, err := inf.options()
		if err != nil {
			return err
		}
		paths, err := imagePaths(*input)
		if err != nil {
			return err
		}
		pr := &predictor{e: e, out: *out, overlay: *overlay, asJSON: *asJSON}
		opt.Progress = pr.progress
		m, err := mf.open(*ckpt, opt)
		if err != nil {
			return err
		}
		defer m.Close()
		pr.m = m
		if m.Task() == label.Segmentation {
			if err := os.MkdirAll(*out, 0o755); err != nil {
				return err
			}
		}
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			if err := pr.predict(ctx, p); err != nil {
				return err
			}
		}
		return nil
	}
	return c
}

// inferFlags are the flags of predict and eval that say how images go through a model.
type inferFlags struct {
	mode, tile, stride, scales *string
	tta, noFlip                *bool
	threads                    *int
}

func addInferFlags(fs *flag.FlagSet) *inferFlags {
	return &inferFlags{
		mode:    fs.String("mode", "auto", "segmentation: auto (whole when the image fits one tile, else tiles), whole, or slide"),
		tile:    fs.String("tile", "", "segmentation: sliding-window tile HxW, multiples of the model's stride (default 512x512)"),
		stride:  fs.String("stride", "", "segmentation: step between tiles HxW (default 341x341, or 2/3 of --tile)"),
		tta:     fs.Bool("tta", false, "test-time augmentation: scales and flips, softmax averaged"),
		scales:  fs.String("scales", "", "with --tta: comma-separated scales (default 0.5,0.75,1,1.25,1.5,1.75)"),
		noFlip:  fs.Bool("no-flip", false, "with --tta: no mirrored passes"),
		threads: fs.Int("threads", 0, "threads for the convolutions (GOMAXPROCS; default: every core)"),
	}
}

// options turns the flags into infer.Options; bad values are usage errors.
func (f *inferFlags) options() (infer.Options, error) {
	var o infer.Options
	var err error
	if o.Mode, err = infer.ParseMode(*f.mode); err != nil {
		return o, usagef("--mode: %q: want auto, whole or slide", *f.mode)
	}
	if *f.tile != "" {
		if o.TileH, o.TileW, err = parseHW(*f.tile); err != nil {
			return o, usagef("--tile: %v", err)
		}
	}
	if *f.stride != "" {
		if o.StrideH, o.StrideW, err = parseHW(*f.stride); err != nil {
			return o, usagef("--stride: %v", err)
		}
	}
	o.TTA, o.NoFlip = *f.tta, *f.noFlip
	if *f.scales != "" {
		if !*f.tta {
			return o, usagef("--scales applies with --tta")
		}
		for _, s := range strings.Split(*f.scales, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return o, usagef("--scales: %q is not a number", s)
			}
			o.Scales = append(o.Scales, v)
		}
	}
	if *f.noFlip && !*f.tta {
		return o, usagef("--no-flip applies with --tta")
	}
	if *f.threads < 0 {
		return o, usagef("--threads %d: want >= 1 (0: every core)", *f.threads)
	}
	if *f.threads > 0 {
		runtime.GOMAXPROCS(*f.threads)
	}
	return o, nil
}

// predictor runs a model on image files and writes or prints what it predicts.
type predictor struct {
	e       *env
	m       *infer.Model
	out     string
	overlay bool
	asJSON  bool
	bar     *progressbar.ProgressBar
	name    string
}

// progress shows a bar on a terminal for images of several tiles.
func (pr *predictor) progress(done, total int) {
	if total < 2 || !train.IsTerminal(pr.e.stderr) {
		return
	}
	if pr.bar == nil {
		pr.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(pr.e.stderr),
			progressbar.OptionSetDescription(filepath.Base(pr.name)+" tiles"), progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(28), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	_ = pr.bar.Set(done)
	if done == total {
		_ = pr.bar.Finish()
		pr.bar = nil
	}
}

func (pr *predictor) predict(ctx context.Context, p string) error {
	pr.name = p
	img, err := data.ReadImage(p)
	if err != nil {
		return err
	}
	if pr.m.Task() == label.Classification {
		probs, err := pr.m.Probabilities(ctx, img)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return printTop5(pr.e, p, pr.m, probs, pr.asJSON)
	}
	mask, err := pr.m.Segment(ctx, img)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
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
	if !pr.asJSON {
		fmt.Fprintf(pr.e.stdout, "%s -> %s\n", p, base+".png")
		return nil
	}
	b, err := json.Marshal(struct {
		Image string `json:"image"`
		Mask  string `json:"mask"`
		maskJSON
	}{p, base + ".png", maskSummary(mask, pr.m.ClassNames())})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(pr.e.stdout, "%s\n", b)
	return err
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

func writeMaskPNG(path string, mask *image.Paletted) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := encodeMask(f, mask); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// encodeMask writes a mask as VOC does: an 8-bit palette PNG, pixel value = class index,
// with the model's palette (VOC's colormap by default). predict and serve both write
// masks through it.
func encodeMask(w io.Writer, mask *image.Paletted) error {
	return png.Encode(w, &image.Paletted{Pix: mask.Pix, Stride: mask.Stride, Rect: mask.Rect, Palette: mask.Palette})
}

// writeOverlay blends the image half and half with the class colours (background and
// ignored pixels left as they are).
func writeOverlay(path string, img *image.RGBA, mask *image.Paletted) error {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			p := img.RGBAAt(b.Min.X+x, b.Min.Y+y)
			k := mask.Pix[y*mask.Stride+x]
			if k != 0 && k != 255 {
				c := color.RGBAModel.Convert(mask.Palette[k]).(color.RGBA)
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

// classifyJSON is the JSON of a classifier's prediction (predict --json, serve).
type classifyJSON struct {
	Image string        `json:"image"`
	Top5  []infer.Class `json:"top5"`
	Probs []float32     `json:"probs"`
}

func printTop5(e *env, path string, m *infer.Model, probs *infer.Probs, asJSON bool) error {
	top := m.Top(probs, 5)
	if asJSON {
		b, err := json.Marshal(classifyJSON{path, top, probs.Data})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", path)
	for _, t := range top {
		fmt.Fprintf(e.stdout, "  %6.2f%%  %s\n", 100*t.Prob, t.Name)
	}
	return nil
}

const predictHelp = `Predict runs a model on one image or every JPEG/PNG in a directory.

Segmentation models write one 8-bit palette PNG per image into --out, at the image's own
resolution, with the VOC colormap (pixel value = class index), named after the image
(2007_000032.jpg -> 2007_000032.png). --overlay also writes <name>_overlay.jpg, the image
blended with the coloured mask. A JPEG's EXIF orientation is applied first (phone photos
are stored sideways), so masks match the image as viewers show it.

Images larger than one tile (--tile, default 512x512) are segmented in overlapping
tiles (--stride, default 341x341): each tile's logits are added into the pixels it
covers and divided by the number of tiles covering them (mmsegmentation's slide mode).
Memory is bounded by the tile, so a 12-megapixel photo runs through a full-width
vgg19-unet in about 1.5 GiB; a progress bar shows the tiles on a terminal. --mode whole
runs every image at once (memory grows with the image); --mode slide tiles even small
ones.

--tta adds test-time augmentation: the image at each of --scales (default
0.5,0.75,1,1.25,1.5,1.75) of its size, plain and mirrored (--no-flip: plain only), softmax
probabilities averaged; it costs about 17 times the plain pass and holds one float per
class and pixel. Classifiers average the image and its mirror image.

Classifiers print the five most probable classes of each image; --json prints one JSON
object per line instead: {"image", "top5": [{"class", "index", "prob"}], "probs": [...]}.
For segmentation, --json prints one object per image with the mask written and the
classes present, as vggo serve's ?format=json: {"image", "mask", "width", "height",
"classes": [{"index", "class", "pixels", "share"}]}.

Examples:
	vggo predict --checkpoint runs/unet/best.safetensors --input photo.jpg --out masks
	vggo predict --checkpoint runs/unet/best.safetensors --input ~/VOCdevkit/VOC2012/JPEGImages --out masks --overlay
	vggo predict --checkpoint runs/unet/best.safetensors --input IMG_0001.jpg --tile 768x768 --stride 512x512
	vggo predict --checkpoint runs/unet/best.safetensors --input photo.jpg --tta --scales 0.75,1,1.25
	vggo predict --checkpoint runs/vgg16/best.safetensors --input cat.jpg --json`
