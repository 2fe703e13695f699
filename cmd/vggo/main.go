// Command vggo trains, evaluates and runs VGG-family classifiers and segmentation models.
//
// Run "vggo help" for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/vggo/vggo/train"
)

// command is one subcommand, in the manner of cmd/go.
type command struct {
	name  string
	usage string // arguments after the name
	short string
	long  string // description and examples for "vggo CMD -h"
	run   func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: its output streams. Nothing global.
type env struct {
	stdout, stderr io.Writer
	// saving, when set, is held while training writes a checkpoint (train.Options.SaveLock).
	saving sync.Locker
}

// usageError makes run exit with status 2 after printing the command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func commands() []*command {
	return []*command{
		trainCmd(),
		evalCmd(),
		predictCmd(),
		serveCmd(),
		summaryCmd(),
		dataCmd(),
		demoDataCmd(),
		exportCmd(),
		reportCmd(),
		benchCmd(),
		versionCmd(),
	}
}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	var saving sync.Mutex
	go handleSignals(sigs, cancel, &saving, func() {
		fmt.Fprintln(os.Stderr, "vggo: second signal: exiting now")
		os.Exit(130)
	})
	os.Exit(runEnv(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, saving: &saving}, os.Args[1:]))
}

// handleSignals turns the first SIGINT, SIGTERM or SIGHUP (a closed terminal, a lost ssh
// session) into a cancelled context: training saves a checkpoint and stops. A second
// signal ends the process at once, but never while a checkpoint is being written, so
// that the last completed epoch stays on disk.
func handleSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc, saving sync.Locker, exit func()) {
	sig := <-sigs
	cancel(fmt.Errorf("%v signal received", sig))
	<-sigs
	saving.Lock() // wait for a checkpoint being written; hold the lock until exit
	exit()
}

// run executes one vggo invocation and returns the process exit status: 0 on success, 1
// on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, &env{stdout: stdout, stderr: stderr}, args)
}

func runEnv(ctx context.Context, e *env, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c := find(args[1]); c != nil {
				_ = c.run(ctx, &env{stdout: stdout, stderr: stderr}, []string{"-h"})
				return 0
			}
			fmt.Fprintf(stderr, "vggo help: unknown command %q\n", args[1])
			return 2
		}
		printHelp(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c := find(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "vggo: unknown command %q\nRun 'vggo help' for usage.\n", args[0])
		return 2
	}
	err := c.run(ctx, e, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vggo %s: %s\nusage: vggo %s %s\nRun 'vggo %s -h' for details.\n", c.name, ue.msg, c.name, c.usage, c.name)
		return 2
	case errors.Is(err, train.ErrInterrupted):
		return 130 // a clean stop on request: the trainer has said where it stopped and how to resume
	case ctx.Err() != nil && errors.Is(err, context.Cause(ctx)):
		fmt.Fprintf(stderr, "vggo %s: stopped: %v\n", c.name, context.Cause(ctx))
		return 130
	default:
		msg := err.Error()
		if !strings.HasPrefix(msg, c.name+": ") { // "vggo train: train: ..." says the name once
			msg = c.name + ": " + msg
		}
		fmt.Fprintf(stderr, "vggo %s\n", msg)
		return 1
	}
}

func find(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "vggo trains and runs VGG-family classifiers and segmentation models in pure Go.")
	fmt.Fprint(w, "\nUsage:\n\n\tvggo <command> [arguments]\n\nThe commands are:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-10s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nUse \"vggo <command> -h\" for more information about a command.")
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: vggo %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.long))
}

// newFlags returns a silent flag set for c: parseFlags reports its errors and prints
// its help.
func newFlags(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors and -h into help. It
// refuses positional arguments.
func parseFlags(e *env, c *command, fs *flag.FlagSet, args []string) error {
	if err := parseFlagsArgs(e, c, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseFlagsArgs is parseFlags for a command that takes positional arguments: it
// leaves them in fs.Args(). Flags may come before, between or after them ("--" ends
// the flags).
func parseFlagsArgs(e *env, c *command, fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandHelp(e.stdout, c)
				fmt.Fprintln(e.stdout, "\nFlags:")
				printFlags(e.stdout, fs)
				return flag.ErrHelp
			}
			return usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// printFlags lists fs's flags as the documentation writes them: --name value.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch d := f.DefValue; {
		case d == "" || d == "0" || d == "false":
		case name == "string":
			fmt.Fprintf(w, " (default %q)", d)
		default:
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}
