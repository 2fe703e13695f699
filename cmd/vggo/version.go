package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/sys/cpu"

	"github.com/vggo/vggo/graphs/ops/gemm"
)

func versionCmd() *command {
	c := &command{
		name:  "version",
		usage: "",
		short: "print vggo's version, the Go version, the GEMM kernel and the CPU features",
		long: `Version prints the module version (and the source revision when the binary was built
from a git checkout), the Go version and platform, whether the binary is statically linked,
the GEMM micro-kernel this CPU runs and the CPU features it depends on.`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		if err := parseFlags(e, c, newFlags(c), args); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "vggo %s\n", moduleVersion())
		fmt.Fprintf(e.stdout, "go: %s %s/%s, cgo %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, buildSetting("CGO_ENABLED", "?"))
		fmt.Fprintf(e.stdout, "gemm kernel: %s (available: %s)\n", gemm.Kernel{}.Name(), strings.Join(gemm.Kernels(), ", "))
		fmt.Fprintf(e.stdout, "cpu: %s\n", strings.Join(cpuFeatures(), " "))
		return nil
	}
	return c
}

// moduleVersion is the main module's version, with the VCS revision when known.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if rev := buildSetting("vcs.revision", ""); rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " " + rev
		if buildSetting("vcs.modified", "") == "true" {
			v += "+modified"
		}
	}
	return v
}

func buildSetting(key, def string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == key {
				return s.Value
			}
		}
	}
	return def
}

// cpuFeatures lists the x86 features the kernels choose between.
func cpuFeatures() []string {
	if runtime.GOARCH != "amd64" {
		return []string{runtime.GOARCH}
	}
	var out []string
	for _, f := range []struct {
		name string
		has  bool
	}{
		{"avx2", cpu.X86.HasAVX2}, {"fma", cpu.X86.HasFMA}, {"avx512f", cpu.X86.HasAVX512F},
		{"avx512bw", cpu.X86.HasAVX512BW}, {"avx512vl", cpu.X86.HasAVX512VL}, {"avx512bf16", cpu.X86.HasAVX512BF16},
	} {
		if f.has {
			out = append(out, f.name)
		}
	}
	if len(out) == 0 {
		return []string{"(no avx2)"}
	}
	return out
}
