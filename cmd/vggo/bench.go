package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/label"
)

func benchCmd() *command {
	var presets []string
	for _, p := range BenchPresets() {
		presets = append(presets, fmt.Sprintf("\t%-4s %s", p.Name, p.Doc))
	}
	c := &command{
		name:  "bench",
		usage: "[--config C1..C7u | --model M --batch N --input HxW --width W --classes N] [--steps N] [--warmup N] [--train-only | --infer-only] [--json]",
		short: "measure training and inference speed, op-kind split and peak memory",
		long: `Bench builds a model with random weights and a fixed random batch, then times
training steps (forward, backward and an SGD step) and inference steps (the evaluation
graph, forward only). It prints the median images/s of each phase, the GFLOP/s achieved
(convolution and fully connected FLOPs; a training step counts 3x the forward pass), the
mean time per step spent in each kind of op, and the process's peak resident memory.

Run one configuration per process: peak memory is the process's maximum so far.

Presets (--config), the configurations vggo is compared with PyTorch on:
` + strings.Join(presets, "\n") + `

Examples:
	vggo bench --config C6s
	vggo bench --model vgg19-unet --width 0.25 --input 128x128 --batch 4 --json
	vggo bench --config C1 --infer-only --batch 8`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		bf := defineBenchFlags(fs)
		asJSON := fs.Bool("json", false, "print the result as JSON")
		cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (pprof format) to `FILE`")
		memProfile := fs.String("memprofile", "", "write the process's memory allocation profile (pprof format; go tool pprof -sample_index=alloc_space shows what allocated the resident memory) to `FILE`")
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		cfg, err := bf.config(set)
		if err != nil {
			return err
		}
		log := e.stderr
		if *asJSON {
			log = io.Discard
		}
		writeMem, err := startMemProfile(*memProfile)
		if err != nil {
			return err
		}
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		res, err := Bench(ctx, cfg, log)
		if err := stop(); err != nil {
			return err
		}
		if err := writeMem(); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		return printBench(e.stdout, res)
	}
	return c
}

type benchFlags struct {
	preset, model, input, gemm                *string
	batch, inferBatch, classes, steps, warmup *int
	width                                     *float64
	trainOnly, inferOnly                      *bool
}

func defineBenchFlags(fs *flag.FlagSet) *benchFlags {
	return &benchFlags{
		preset:     fs.String("config", "", "a preset from the list above; other flags override its fields"),
		gemm:       fs.String("gemm", "", "matrix-multiply kernel: avx512, avx2 or generic (default: the fastest this CPU runs)"),
		model:      fs.String("model", "vgg16", "architecture: "+strings.Join(graphs.Names(), ", ")),
		batch:      fs.Int("batch", 4, "training batch (and inference batch unless --infer-batch)"),
		inferBatch: fs.Int("infer-batch", 0, "inference batch (default: --batch)"),
		input:      fs.String("input", "", "input size HxW (default: the model's)"),
		width:      fs.Float64("width", 1, "channel-width multiplier 1/k (0.25 divides every width by 4)"),
		classes:    fs.Int("classes", 0, "number of classes (default: 1000 for classifiers, 21 for segmentation)"),
		steps:      fs.Int("steps", 10, "timed steps per phase"),
		warmup:     fs.Int("warmup", 2, "untimed steps before them"),
		trainOnly:  fs.Bool("train-only", false, "skip inference"),
		inferOnly:  fs.Bool("infer-only", false, "skip training"),
	}
}

// config is the benchmark the flags describe: the preset, if any, with the flags given
// (set) replacing its fields.
func (f *benchFlags) config(set map[string]bool) (BenchConfig, error) {
	cfg := BenchConfig{}
	own := *f.preset == ""
	if !own {
		p, err := LookupBenchPreset(*f.preset)
		if err != nil {
			return cfg, usagef("--config: %v", err)
		}
		cfg = p.Cfg
	}
	if own || set["model"] {
		cfg.Model.Arch = *f.model
	}
	if own || set["width"] {
		cfg.Model.Mult = *f.width
	}
	if own || set["classes"] {
		cfg.Model.Classes = *f.classes
	}
	if own || set["batch"] {
		cfg.Batch, cfg.InferBatch = *f.batch, 0
	}
	if set["infer-batch"] {
		cfg.InferBatch = *f.inferBatch
	}
	if *f.input != "" {
		h, w, err := parseHW(*f.input)
		if err != nil {
			return cfg, usagef("--input: %v", err)
		}
		cfg.H, cfg.W = h, w
		if info, err := graphs.Lookup(cfg.Model.Arch); err == nil && info.Task == label.Classification {
			cfg.Model.InputH, cfg.Model.InputW = h, w
		}
	} else if own {
		cfg.H, cfg.W = 0, 0
	}
	switch {
	case *f.steps < 1:
		return cfg, usagef("--steps %d: want at least 1", *f.steps)
	case *f.warmup < 0:
		return cfg, usagef("--warmup %d: want at least 0", *f.warmup)
	case *f.trainOnly && *f.inferOnly:
		return cfg, usagef("--train-only and --infer-only exclude each other")
	}
	cfg.Steps, cfg.Warmup = *f.steps, *f.warmup
	if *f.warmup == 0 {
		cfg.Warmup = -1 // BenchConfig's 0 means the default
	}
	cfg.SkipTrain, cfg.SkipInfer = *f.inferOnly, *f.trainOnly
	if _, err := gemm.Lookup(*f.gemm); err != nil {
		return cfg, usagef("--gemm: %v", err)
	}
	cfg.Gemm = *f.gemm
	return cfg, nil
}

// printBench writes a bench result as a readable table.
func printBench(w io.Writer, r *BenchResult) error {
	cfg := r.Config
	title := fmt.Sprintf("%s %dx%d", r.Arch, r.H, r.W)
	if k, err := cfg.Model.Divisor(); err == nil && k > 1 {
		title += fmt.Sprintf(" width 1/%d", k)
	}
	fmt.Fprintf(w, "%s, %d classes, gemm %s, %d threads, %d timed steps after %d warm-up\n",
		title, cfg.Model.Classes, r.GemmKernel, r.Threads, cfg.Steps, cfg.Warmup)
	fmt.Fprintf(w, "cpu: %s", r.CPU)
	if r.CPUGHz > 0 {
		fmt.Fprintf(w, ", measured %.2f GHz", r.CPUGHz)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "model: %.3f GFLOP per image forward (conv + linear, counted as direct convolution: the Winograd layers\n"+
		"do fewer multiplications, so GFLOP/s can pass the machine's FMA peak)\n\n", r.GFLOPPerImage)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tbatch\tms/step\timages/s\tGFLOP/s\talloc MiB/step\t")
	if r.TrainImagesPS > 0 {
		fmt.Fprintf(tw, "train\t%d\t%.1f\t%.2f\t%.1f\t%.1f\t\n", cfg.Batch, r.TrainStepMS, r.TrainImagesPS, r.TrainGFLOPS, r.TrainAllocsMiB)
	}
	if r.InferImagesPS > 0 {
		fmt.Fprintf(tw, "infer\t%d\t%.1f\t%.2f\t%.1f\t%.1f\t\n", cfg.InferBatch, r.InferStepMS, r.InferImagesPS, r.InferGFLOPS, r.InferAllocsMiB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ph := range []struct {
		name  string
		step  float64
		split []KindTime
	}{{"train", r.TrainStepMS, r.TrainSplitMS}, {"infer", r.InferStepMS, r.InferSplitMS}} {
		if len(ph.split) == 0 {
			continue
		}
		var total float64
		for _, k := range ph.split {
			total += k.MS
		}
		fmt.Fprintf(w, "\n%s: time per step by op kind (mean)\n", ph.name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, k := range ph.split {
			fmt.Fprintf(tw, "%s\t%.1f ms\t%.1f%%\t\n", k.Kind, k.MS, 100*k.MS/total)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\npeak RSS: %.0f MiB", r.PeakRSSMiB)
	if r.TrainImagesPS > 0 {
		fmt.Fprintf(w, " (training: activations %.0f MiB, scratch %.0f MiB)", r.TrainActivationsMiB, r.TrainWorkspaceMiB)
	} else {
		fmt.Fprintf(w, " (inference: activations %.0f MiB, scratch %.0f MiB)", r.InferActivationsMiB, r.InferWorkspaceMiB)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// startCPUProfile starts writing a CPU profile to path ("": none) and returns what stops it.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", path, err)
		}
		return nil
	}, nil
}

// startMemProfile creates path ("": none) before the run, so that a path that cannot be
// written fails at once, and returns what writes the process's allocation profile to it.
func startMemProfile(path string) (write func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--memprofile: %w", err)
	}
	return func() error {
		err := pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--memprofile %s: %w", path, err)
		}
		return nil
	}, nil
}
