package atomicfile

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vggo/vggo/internal/proc"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "best.json")
	var tmpSeen string
	err := WriteFile(path, func(w io.Writer) error {
		// While writing, the only other file is this process's temporary file.
		for _, n := range names(t, dir) {
			tmpSeen = n
		}
		_, err := io.WriteString(w, "one")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	target, pid, tag, ok := Owner(tmpSeen)
	if !ok || target != "best.json" || pid != os.Getpid() || tag != proc.HostTag(proc.Hostname()) {
		t.Errorf("temporary file %q: got target %q pid %d tag %q ok %v", tmpSeen, target, pid, tag, ok)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("content %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}

	boom := errors.New("boom")
	err = WriteFile(path, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the write error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("a failed write changed the file: %q", b)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"best.json"}) {
		t.Errorf("a failed write left %v", got)
	}
}

func TestOwner(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{TempName("last.safetensors", 1234, "0a1b2c3d", "xyz9"), true},
		{TempName(".best.json", 7, "ffffffff", "0"), true},
		{".last.safetensors.tmp-12345", false},
		{".best.json.123.tmp", false},
		{"last.safetensors", false},
		{".x.tmp-12-0A1B2C3D-z", false},
	} {
		_, _, _, ok := Owner(c.name)
		if ok != c.ok {
			t.Errorf("Owner(%q): ok %v, want %v", c.name, ok, c.ok)
		}
	}
	target, pid, tag, _ := Owner(TempName("a.b", 99, "01234567", "r"))
	if target != "a.b" || pid != 99 || tag != "01234567" {
		t.Errorf("got %q %d %q", target, pid, tag)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs the true command")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	if proc.Alive(cmd.Process.Pid) {
		t.Skip("the dead child's pid was reused")
	}
	return cmd.Process.Pid
}

func TestClean(t *testing.T) {
	dir := t.TempDir()
	here := proc.HostTag(proc.Hostname())
	other := proc.HostTag("some-other-host")
	dead := deadPID(t)
	files := map[string]bool{ // name: removed by Clean
		TempName("last.safetensors", dead, here, "a"):        true,
		TempName("best.json", dead, here, "b"):               true,
		TempName("last.safetensors", os.Getpid(), here, "c"): false, // live: this process
		TempName("last.safetensors", dead, other, "d"):       false, // another host: cannot tell
		".last.safetensors.tmp-555":                          true,  // legacy, old
		".best.json.777.tmp":                                 true,  // legacy, old
		".ckpt-epoch0001-step000010.safetensors.tmp-9":       false, // legacy, recent
		"notes.tmp":                  false,
		"last.safetensors":           false,
		".hidden":                    false,
		"x.safetensors.tmp-1-2-3":    false,
		".config.json.tmp-1-2-3-4-5": false,
	}
	old := time.Now().Add(-2 * LegacyAge)
	for name := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if name != ".ckpt-epoch0001-step000010.safetensors.tmp-9" {
			os.Chtimes(p, old, old)
		}
	}
	removed, err := Clean(dir)
	if err != nil {
		t.Fatal(err)
	}
	left := names(t, dir)
	for name, gone := range files {
		if gone != !slices.Contains(left, name) || gone != slices.Contains(removed, name) {
			t.Errorf("%s: removed=%v, want %v (reported %v)", name, !slices.Contains(left, name), gone, removed)
		}
	}
	if _, err := Clean(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: got %v", err)
	}
}
