package main

import (
	"encoding/json"
	"image/color"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/train"
)

// Every command's help lists its flags as the docs write them (--name), with no
// internal placeholder defaults and no references outside the repository.
func TestHelpTexts(t *testing.T) {
	for _, c := range commands() {
		code, out, errs := vggo(t, "help", c.name)
		if code != 0 || errs != "" {
			t.Errorf("help %s: exit %d, %q", c.name, code, errs)
		}
		if !strings.Contains(out, "Flags:") {
			t.Errorf("help %s lists no flags:\n%s", c.name, out)
		}
		if regexp.MustCompile(`(?m)^  -[a-z]`).MatchString(out) {
			t.Errorf("help %s shows a flag with one dash:\n%s", c.name, out)
		}
		for _, bad := range []string{"(default -1)", "issue ", "seed 00", "DESIGN.md"} {
			if strings.Contains(out, bad) {
				t.Errorf("help %s contains %q", c.name, bad)
			}
		}
	}
}

// A flag after a positional argument is parsed as a flag, not taken as an argument.
func TestFlagAfterPositional(t *testing.T) {
	code, _, errs := vggo(t, "report", t.TempDir(), "--x")
	if code != 2 || !strings.Contains(errs, "flag provided but not defined: -x") {
		t.Errorf("report DIR --x: exit %d, %q; want a usage error about --x", code, errs)
	}
	code, _, errs = vggo(t, "data", "--kind", "folder", "check", "--data", t.TempDir())
	if code != 1 || strings.Contains(errs, "subcommand") {
		t.Errorf("data --kind folder check --data DIR: exit %d, %q; want the check to run (and fail on the empty dir)", code, errs)
	}
}

// torchvision's flag names, and --resume given the checkpoint file.
func TestTrainAliasesAndResumeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	dir := t.TempDir()
	demo, run := filepath.Join(dir, "demo"), filepath.Join(dir, "run")
	demoData(t, demo, 4, 1, 32)
	code, out, errs := vggo(t, "train", "--data", demo, "--crop", "32x32", "--width", "0.0625", "--epochs", "1",
		"--batch-size", "2", "--output-dir", run)
	if code != 0 || !strings.Contains(errs, "2 steps of 2 per epoch") {
		t.Fatalf("train with --batch-size 2 --output-dir: exit %d\n%s\n%s", code, out, errs)
	}
	last := filepath.Join(run, checkpoints.LastName)
	if _, err := os.Stat(last); err != nil {
		t.Fatal(err)
	}
	code, _, errs = vggo(t, "train", "--resume", last, "--epochs", "2")
	if code != 0 {
		t.Errorf("--resume RUNDIR/last.safetensors: exit %d %s", code, errs)
	}
	code, _, errs = vggo(t, "train", "--resume", filepath.Join(run, checkpoints.BestName))
	if code != 2 || !strings.Contains(errs, "--pretrained") {
		t.Errorf("--resume best.safetensors: exit %d %q; want a usage error pointing to --pretrained", code, errs)
	}
}

// Class names from classes.txt beside the data (or --class-names) and colours from
// --palette travel in the checkpoint; eval names the classes so.
func TestClassNamesAndPalette(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	dir := t.TempDir()
	demo, run := filepath.Join(dir, "demo"), filepath.Join(dir, "run")
	demoData(t, demo, 4, 2, 32)
	var names []string
	for i := range 21 {
		names = append(names, "thing"+strconv.Itoa(i))
	}
	if err := os.WriteFile(filepath.Join(demo, "classes.txt"), []byte("# my classes\n"+strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pal := filepath.Join(dir, "colours.txt")
	if err := os.WriteFile(pal, []byte("#000000\n255 0 0\n#00ff00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := vggo(t, "train", "--data", demo, "--crop", "32x32", "--width", "0.0625", "--epochs", "1", "--batch", "2",
		"--palette", pal, "--out", run)
	if code != 0 || !strings.Contains(errs, "class names from "+filepath.Join(demo, "classes.txt")) {
		t.Fatalf("train: exit %d\n%s", code, errs)
	}
	f, err := checkpoints.Load(filepath.Join(run, checkpoints.LastName))
	if err != nil {
		t.Fatal(err)
	}
	if got := train.ClassNames(f, 21); got[15] != "thing15" {
		t.Errorf("stored class 15 is %q, want thing15", got[15])
	}
	cols, err := train.Palette(f)
	if err != nil || len(cols) != 3 || cols[1] != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("stored palette %v (%v), want black, red, green", cols, err)
	}
	code, out, errs := vggo(t, "eval", "--checkpoint", filepath.Join(run, checkpoints.LastName), "--data", demo)
	if code != 0 || !strings.Contains(out, "thing0") {
		t.Errorf("eval: exit %d %s\n%s", code, errs, out)
	}
	if code, _, errs := vggo(t, "train", "--data", demo, "--palette", filepath.Join(dir, "missing.txt"), "--out", filepath.Join(dir, "r2")); code != 2 || !strings.Contains(errs, "missing.txt") {
		t.Errorf("a missing palette file: exit %d %q, want a usage error naming it", code, errs)
	}
}

// predict --json describes a segmentation mask (the classes present) as serve does, and
// the masks carry the model's palette.
func TestPredictSegmentationJSONAndPalette(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	dir := t.TempDir()
	demo, run, out := filepath.Join(dir, "demo"), filepath.Join(dir, "run"), filepath.Join(dir, "masks")
	demoData(t, demo, 4, 1, 32)
	pal := filepath.Join(dir, "colours.txt")
	if err := os.WriteFile(pal, []byte("#102030\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := vggo(t, "train", "--data", demo, "--crop", "32x32", "--width", "0.0625", "--epochs", "1", "--batch", "2", "--palette", pal, "--out", run); code != 0 {
		t.Fatalf("train: %s", errs)
	}
	img := filepath.Join(demo, "JPEGImages", "demo_0000.jpg")
	code, stdout, errs := vggo(t, "predict", "--checkpoint", filepath.Join(run, checkpoints.LastName), "--input", img, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("predict: %s", errs)
	}
	var got struct {
		Image, Mask   string
		Width, Height int
		Classes       []struct {
			Index  int
			Class  string
			Pixels int
			Share  float64
		}
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	total := 0
	for _, c := range got.Classes {
		total += c.Pixels
	}
	if got.Image != img || got.Width != 32 || got.Height != 32 || total != 32*32 || len(got.Classes) == 0 {
		t.Errorf("predict --json: %+v, want the image, its size and classes covering its 1024 pixels", got)
	}
	mask := readPaletted(t, got.Mask)
	if r, g, b, _ := mask.Palette[0].RGBA(); r>>8 != 0x10 || g>>8 != 0x20 || b>>8 != 0x30 {
		t.Errorf("mask palette[0] = %v, want #102030 from --palette", mask.Palette[0])
	}
}
