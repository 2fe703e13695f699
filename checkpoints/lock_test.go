package checkpoints

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vggo/vggo/internal/proc"
)

// lockHolderEnv switches the test binary into a lock holder: the value is "flock" or
// "pid" and the run directory, separated by a colon. The holder prints "locked", then
// holds the lock until its stdin closes (then it releases it and exits) or it is
// killed.
const lockHolderEnv = "VGGO_TEST_LOCK_HOLDER"

func TestMain(m *testing.M) {
	if v := os.Getenv(lockHolderEnv); v != "" {
		os.Exit(holdLock(v))
	}
	os.Exit(m.Run())
}

func holdLock(v string) int {
	mode, dir, _ := strings.Cut(v, ":")
	l, err := lockRun(dir, mode == "flock")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	if err := l.Close(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

// lockModes are the two mechanisms; flock only where the system has it.
func lockModes() []string {
	if haveFlock {
		return []string{"flock", "pid"}
	}
	return []string{"pid"}
}

// startHolder runs the test binary as a lock holder of dir and waits until it holds
// the lock.
func startHolder(t *testing.T, mode, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+mode+":"+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("holder: got %q, %v, want \"locked\"", line, err)
	}
	return cmd, stdin
}

func TestLockRunTwoProcesses(t *testing.T) {
	for _, mode := range lockModes() {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			child, _ := startHolder(t, mode, dir)
			pid := child.Process.Pid

			// The child holds it: refused, naming the child.
			_, err := lockRun(dir, mode == "flock")
			var busy *BusyError
			if !errors.As(err, &busy) {
				t.Fatalf("while the child holds the lock: got %v, want a *BusyError", err)
			}
			if busy.Owner.PID != pid || busy.Owner.Host != proc.Hostname() || time.Since(busy.Owner.Since) > time.Minute || busy.Dir != dir {
				t.Errorf("busy owner: got %+v in %s, want pid %d on %s, recent", busy.Owner, busy.Dir, pid, proc.Hostname())
			}
			want := fmt.Sprintf("run directory %s is in use by vggo pid %d on host %s since ", dir, pid, proc.Hostname())
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message: got %q, want it to contain %q", err, want)
			}

			// The child dies without releasing it: the lock is taken over.
			child.Process.Kill()
			child.Wait()
			l, err := lockRun(dir, mode == "flock")
			if err != nil {
				t.Fatalf("after the child died: %v", err)
			}
			prev, ok := l.TakenOver()
			if !ok || prev.PID != pid {
				t.Errorf("TakenOver: got %+v %v, want the dead child's pid %d", prev, ok, pid)
			}
			if msg := l.TakeoverMessage(); !strings.Contains(msg, "took over the lock of vggo pid "+strconv.Itoa(pid)) || !strings.Contains(msg, "no longer running") {
				t.Errorf("TakeoverMessage: %q", msg)
			}
			if b, _ := os.ReadFile(l.Path()); !strings.Contains(string(b), `"pid":`+strconv.Itoa(os.Getpid())) {
				t.Errorf("lock file after takeover: %s", b)
			}

			// Released cleanly: the file goes, and the next lock is not a takeover.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := os.Stat(l.Path()); !os.IsNotExist(err) {
				t.Errorf("lock file after Close: %v", err)
			}
			l, err = lockRun(dir, mode == "flock")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := l.TakenOver(); ok || l.TakeoverMessage() != "" {
				t.Error("a released lock was reported as taken over")
			}
			l.Close()
		})
	}
}

func TestLockRunReleasedByOtherProcess(t *testing.T) {
	for _, mode := range lockModes() {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			child, stdin := startHolder(t, mode, dir)
			stdin.Close() // the child releases the lock and exits
			if err := child.Wait(); err != nil {
				t.Fatalf("holder: %v", err)
			}
			l, err := lockRun(dir, mode == "flock")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, ok := l.TakenOver(); ok {
				t.Error("a lock released with Close was taken over")
			}
		})
	}
}

func TestLockRunSameProcess(t *testing.T) {
	for _, mode := range lockModes() {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			l, err := lockRun(dir, mode == "flock")
			if err != nil {
				t.Fatal(err)
			}
			var busy *BusyError
			if _, err := lockRun(dir, mode == "flock"); !errors.As(err, &busy) || busy.Owner != l.Owner() {
				t.Errorf("second lock in one process: got %v, want a *BusyError naming this process", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2, err := lockRun(dir, mode == "flock")
			if err != nil {
				t.Fatalf("after Close: %v", err)
			}
			l2.Close()
		})
	}
}

func TestLockRunUnreadable(t *testing.T) {
	// pid mode: a lock file nobody can read is refused, with a hint.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, LockName), []byte("garbage"), 0o644)
	_, err := lockRun(dir, false)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Owner.PID != 0 || !strings.Contains(err.Error(), "unknown owner") || !strings.Contains(err.Error(), "delete the lock file") {
		t.Errorf("pid mode: got %v", err)
	}
	// pid mode: an owner on another host cannot be checked, so it is busy.
	other := `{"pid":1,"host":"elsewhere.example","since":"2025-01-02T03:04:05Z"}`
	os.WriteFile(filepath.Join(dir, LockName), []byte(other), 0o644)
	if _, err := lockRun(dir, false); !errors.As(err, &busy) || busy.Owner.Host != "elsewhere.example" || !strings.Contains(err.Error(), "on host elsewhere.example") {
		t.Errorf("other host: got %v", err)
	}
	if !haveFlock {
		return
	}
	// flock mode: nobody holds the flock, so the garbage is a dead owner's.
	os.WriteFile(filepath.Join(dir, LockName), []byte("garbage"), 0o644)
	l, err := lockRun(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if prev, ok := l.TakenOver(); !ok || prev.PID != 0 || !strings.Contains(l.TakeoverMessage(), "an unknown owner") {
		t.Errorf("flock takeover of garbage: got %+v %v %q", prev, ok, l.TakeoverMessage())
	}
}

func TestLockRunRace(t *testing.T) {
	for _, mode := range lockModes() {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			const n = 8
			lines := make(chan string, n)
			for range n {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), lockHolderEnv+"="+mode+":"+dir)
				stdout, _ := cmd.StdoutPipe()
				if _, err := cmd.StdinPipe(); err != nil { // held open: winners keep the lock
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				go func() {
					line, _ := bufio.NewReader(stdout).ReadString('\n')
					lines <- line
				}()
			}
			locked := 0
			for range n {
				line := <-lines
				switch {
				case line == "locked\n":
					locked++
				case !strings.Contains(line, "is in use by vggo pid"):
					t.Errorf("holder: %q", line)
				}
			}
			if locked != 1 {
				t.Errorf("%d of %d concurrent processes got the lock, want 1", locked, n)
			}
		})
	}
}
