package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/vggo/vggo/graphs"
)

func summaryCmd() *command {
	c := &command{
		name:  "summary",
		usage: "[--model M] [--input HxW] [--classes N] [--width W] [--unpool upsample|indices]",
		short: "print a model's layers, output shapes and parameter counts",
		long: `Summary prints a Keras-style table of a model: each layer with its PyTorch
parameter name, type, output shape (NCHW) and parameter count, then the total,
trainable and non-trainable counts (batch-norm running statistics are counted the
Keras way, as non-trainable). Nothing is allocated, so full-size models print at once.

Models: ` + strings.Join(graphs.Names(), ", ") + `

Examples:
	vggo summary --model vgg16
	vggo summary --model vgg16-segnet --input 512x512 --classes 21
	vggo summary --model vgg19-unet --width 0.125 --input 128x128`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		model := fs.String("model", "vgg19-unet", "architecture: "+strings.Join(graphs.Names(), ", "))
		input := fs.String("input", "", "input size HxW (default: the model's, 224x224 or 512x512)")
		classes := fs.Int("classes", 0, "number of classes (default: 1000 for classifiers, 21 for segmentation)")
		width := fs.Float64("width", 1, "channel-width multiplier 1/k (0.125 divides every width by 8)")
		unpool := fs.String("unpool", "", "vgg16-segnet decoder: upsample or indices")
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		cfg := graphs.Config{Arch: *model, Classes: *classes, Mult: *width, Unpool: *unpool}
		if *input != "" {
			h, w, err := parseHW(*input)
			if err != nil {
				return usagef("--input: %v", err)
			}
			cfg.InputH, cfg.InputW = h, w
		}
		s, err := graphs.Summarize(cfg)
		if err != nil {
			return err
		}
		return s.Print(e.stdout)
	}
	return c
}

// parseHW parses "512x384" (height x width) or "512" (square).
func parseHW(s string) (int, int, error) {
	hs, ws, found := strings.Cut(strings.ToLower(s), "x")
	if !found {
		ws = hs
	}
	h, err1 := strconv.Atoi(strings.TrimSpace(hs))
	w, err2 := strconv.Atoi(strings.TrimSpace(ws))
	if err1 != nil || err2 != nil || h < 1 || w < 1 {
		return 0, 0, fmt.Errorf("want HxW like 512x512, got %q", s)
	}
	return h, w, nil
}
