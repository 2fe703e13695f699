package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func vggo(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// demoData writes a demo dataset of train and val images of size x size into dir.
func demoData(t *testing.T, dir string, train, val, size int) {
	t.Helper()
	code, _, errs := vggo(t, "demo-data", "--out", dir, "--train", strconv.Itoa(train), "--val", strconv.Itoa(val), "--size", strconv.Itoa(size))
	if code != 0 {
		t.Fatalf("demo-data: exit %d: %s", code, errs)
	}
}

func readPaletted(t *testing.T, path string) *image.Paletted {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p, ok := img.(*image.Paletted)
	if !ok {
		t.Fatalf("%s: %T, want a palette PNG", path, img)
	}
	return p
}

// The path a user walks: demo data -> train -> checkpoint -> eval -> predict. The masks
// predict writes, scored here by an independent computation, give the mIoU eval printed.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	dir := t.TempDir()
	demo, run := filepath.Join(dir, "demo"), filepath.Join(dir, "run")
	demoData(t, demo, 16, 6, 64)
	code, out, errs := vggo(t, "train", "--data", demo, "--epochs", "2", "--batch", "4", "--crop", "64x64",
		"--width", "0.125", "--out", run, "--optimizer", "adam", "--lr", "0.003")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "validation mIoU") {
		t.Errorf("train output lacks the validation mIoU:\n%s", out)
	}
	ckpt := filepath.Join(run, "best.safetensors")
	code, out, errs = vggo(t, "eval", "--checkpoint", ckpt, "--data", demo, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d %s", code, errs)
	}
	var scores struct {
		MIoU     float64 `json:"miou"`
		PixelAcc float64 `json:"pixel_acc"`
		PerClass []struct {
			Name string   `json:"name"`
			IoU  *float64 `json:"iou"`
		} `json:"per_class"`
	}
	if err := json.Unmarshal([]byte(out), &scores); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	if len(scores.PerClass) != 21 || scores.PerClass[15].Name != "person" {
		t.Errorf("per_class: %+v", scores.PerClass)
	}

	// Predict every validation image, then score the written masks against the ground truth.
	split, err := os.ReadFile(filepath.Join(demo, "ImageSets", "Segmentation", "val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	masks := filepath.Join(dir, "masks")
	var inter, union [256]int64
	for _, id := range strings.Fields(string(split)) {
		img := filepath.Join(demo, "JPEGImages", id+".jpg")
		if code, _, errs := vggo(t, "predict", "--checkpoint", ckpt, "--input", img, "--out", masks, "--overlay"); code != 0 {
			t.Fatalf("predict: %d %s", code, errs)
		}
		pred := readPaletted(t, filepath.Join(masks, id+".png"))
		gt := readPaletted(t, filepath.Join(demo, "SegmentationClass", id+".png"))
		if pred.Bounds() != gt.Bounds() {
			t.Fatalf("%s: mask %v, ground truth %v", id, pred.Bounds(), gt.Bounds())
		}
		if _, err := os.Stat(filepath.Join(masks, id+"_overlay.jpg")); err != nil {
			t.Errorf("no overlay: %v", err)
		}
		for i, g := range gt.Pix {
			if g == 255 {
				continue
			}
			p := pred.Pix[i]
			if p == g {
				inter[g]++
				union[g]++
			} else {
				union[g]++
				union[p]++
			}
		}
	}
	var sum float64
	var n int
	for c := range union {
		if union[c] > 0 {
			sum += float64(inter[c]) / float64(union[c])
			n++
		}
	}
	if got := sum / float64(n); got-scores.MIoU > 1e-9 || scores.MIoU-got > 1e-9 {
		t.Errorf("mIoU of the predicted masks %.6f, eval printed %.6f", got, scores.MIoU)
	}

	// Export, then evaluate the weights-only file as a PyTorch-converted one would be.
	weights := filepath.Join(dir, "w.safetensors")
	if code, _, errs := vggo(t, "export", "--checkpoint", ckpt, "--out", weights); code != 0 {
		t.Fatalf("export: %d %s", code, errs)
	}
	code, out2, errs := vggo(t, "eval", "--checkpoint", weights, "--model", "vgg19-unet", "--width", "0.125", "--classes", "21", "--data", demo, "--json")
	if code != 0 || out2 != out {
		t.Errorf("eval of the export: exit %d %s\n%s\nvs\n%s", code, errs, out2, out)
	}
	if code, _, errs := vggo(t, "report", run); code != 0 {
		t.Errorf("report: %d %s", code, errs)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"summary", "--model", "resnet"}, 1, "valid: alexnet"},
		{[]string{"summary", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"train", "--resume", "x", "--lr", "0.1"}, 2, "cannot be changed when resuming"},
		{[]string{"train", "--model", "vgg16"}, 2, "give --data"},
		{[]string{"eval", "--data", "x"}, 2, "--checkpoint is required"},
		{[]string{"data", "check", "--data", "/nonexistent/voc"}, 1, "JPEGImages"},
		{[]string{"data", "frob"}, 2, "only data subcommand"},
		{[]string{"train", "--accum", "0"}, 2, "--accum 0: want >= 1"},
		{[]string{"train", "--sync-bn"}, 2, "--sync-bn applies to --distributed training only"},
	}
	for _, tt := range tests {
		code, out, errs := vggo(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.want) {
			t.Errorf("vggo %v: exit %d, output %q; want exit %d and %q", tt.args, code, out+errs, tt.code, tt.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := vggo(t, c.name, "-h")
		if code != 0 || !strings.Contains(out, "usage: vggo "+c.name) {
			t.Errorf("vggo %s -h: exit %d\n%s", c.name, code, out)
		}
	}
	if code, out, _ := vggo(t, "help"); code != 0 || !strings.Contains(out, "predict") {
		t.Errorf("vggo help: %d %s", code, out)
	}
}

func TestSummaryCommand(t *testing.T) {
	code, out, errs := vggo(t, "summary", "--model", "vgg16-segnet", "--input", "512x512")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{"Total params: 29,460,329", "Trainable params: 29,444,415", "Non-trainable params: 15,914", "encoder.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}
