package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/train"
)

// tinyUNet writes a small demo dataset and an untrained width-1/16 vgg19-unet weights
// file into dir.
func tinyUNet(t *testing.T, dir string) (weights, demo string) {
	t.Helper()
	demo = filepath.Join(dir, "demo")
	if err := data.WriteDemo(demo, data.DemoConfig{Train: 1, Val: 3, Size: 64}); err != nil {
		t.Fatal(err)
	}
	net, err := graphs.New(graphs.Config{Arch: "vgg19-unet", Mult: 1.0 / 16, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	weights = filepath.Join(dir, "unet.safetensors")
	if err := checkpoints.Save(weights, train.WeightsFile(net, nil)); err != nil {
		t.Fatal(err)
	}
	return weights, demo
}

// TestPredictModes: whole, slide and TTA each write a mask of the image's size; a tile
// as large as the image gives the whole-image mask; eval --compare reports every mode.
func TestPredictModes(t *testing.T) {
	dir := t.TempDir()
	weights, demo := tinyUNet(t, dir)
	img := filepath.Join(demo, "JPEGImages", "demo_0001.jpg")
	masks := map[string][]uint8{}
	for name, args := range map[string][]string{
		"whole":      {"--mode", "whole"},
		"slide":      {"--mode", "slide", "--tile", "32x32", "--stride", "16x16"},
		"slide-full": {"--mode", "slide", "--tile", "64x64"},
		"tta":        {"--tta", "--scales", "0.5,1", "--threads", "2"},
	} {
		out := filepath.Join(dir, name)
		code, _, errs := vggo(t, append([]string{"predict", "--checkpoint", weights, "--input", img, "--out", out}, args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d %s", name, code, errs)
		}
		m := readPaletted(t, filepath.Join(out, "demo_0001.png"))
		if m.Rect.Dx() != 64 || m.Rect.Dy() != 64 {
			t.Errorf("%s: mask %v", name, m.Rect)
		}
		masks[name] = m.Pix
	}
	if !slices.Equal(masks["whole"], masks["slide-full"]) {
		t.Error("a one-tile slide differs from the whole image")
	}
	code, out, errs := vggo(t, "eval", "--checkpoint", weights, "--data", demo, "--compare", "--tile", "32x32", "--stride", "16x16", "--scales", "1", "--tta", "--json")
	if code != 2 || !strings.Contains(errs, "--compare runs every mode") {
		t.Errorf("eval --compare --tta: exit %d %s", code, errs)
	}
	code, out, errs = vggo(t, "eval", "--checkpoint", weights, "--data", demo, "--compare", "--tile", "32x32", "--stride", "16x16", "--json")
	if code != 0 {
		t.Fatalf("eval --compare: exit %d %s", code, errs)
	}
	var res map[string]struct {
		MIoU *float64 `json:"miou"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, k := range []string{"whole", "slide", "tta"} {
		if res[k].MIoU == nil {
			t.Errorf("eval --compare --json: no %s miou in\n%s", k, out)
		}
	}
}

func TestPredictFlagErrors(t *testing.T) {
	dir := t.TempDir()
	weights, demo := tinyUNet(t, dir)
	img := filepath.Join(demo, "JPEGImages", "demo_0001.jpg")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--mode", "tiles"}, 2, "--mode"},
		{[]string{"--scales", "1"}, 2, "--scales applies with --tta"},
		{[]string{"--tta", "--scales", "1,x"}, 2, `"x" is not a number`},
		{[]string{"--tile", "40x40"}, 1, "multiples of 16"},
		{[]string{"--tile", "32x32", "--stride", "48x48"}, 1, "stride 48x48"},
		{[]string{"--threads", "-1"}, 2, "--threads"},
	}
	for _, c := range cases {
		code, _, errs := vggo(t, append([]string{"predict", "--checkpoint", weights, "--input", img, "--out", dir}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "demo_0001.png")); err == nil {
		t.Error("a failed predict wrote a mask")
	}
}
