package checkpoints

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vggo/vggo/internal/atomicfile"
	"github.com/vggo/vggo/internal/proc"
)

func tiny(v float32) *File {
	return &File{Tensors: []Tensor{{Name: "w", Shape: []int{1}, Data: []float32{v}}}}
}

func TestManagerRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	m, err := NewManager(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A file of someone else's and one that only looks numbered survive pruning.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "ckpt-epoch1-stepX.safetensors"), []byte("x"), 0o644)

	saves := []struct{ epoch, step int }{{1, 100}, {2, 200}, {10, 1000}, {3, 300}, {12, 1234567}}
	for i, s := range saves {
		p, err := m.SaveNumbered(tiny(float32(i)), s.epoch, s.step)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) != NumberedName(s.epoch, s.step) {
			t.Errorf("path %s", p)
		}
	}
	if err := m.SaveBest(tiny(-1)); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveLast(tiny(-2)); err != nil {
		t.Fatal(err)
	}
	list, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range list {
		got = append(got, filepath.Base(n.Path))
	}
	// Ordered by (epoch, step), not by name or time: epoch 3 was saved after epoch 10.
	if want := []string{"ckpt-epoch0010-step001000.safetensors", "ckpt-epoch0012-step1234567.safetensors"}; !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	names := dirNames(t, dir)
	for _, keep := range []string{"best.safetensors", "last.safetensors", "notes.txt", "ckpt-epoch1-stepX.safetensors"} {
		if !slices.Contains(names, keep) {
			t.Errorf("%s was deleted; directory holds %v", keep, names)
		}
	}
	if f, err := Load(m.BestPath()); err != nil || f.Tensors[0].Data[0] != -1 {
		t.Errorf("best: %v %v", f, err)
	}
}

func TestManagerKeepNoneAndStaleTemps(t *testing.T) {
	dir := t.TempDir()
	if runtime.GOOS == "windows" {
		t.Skip("needs the sleep command")
	}
	// A live writer: another process, as a second vggo in the same directory would be.
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Skip(err)
	}
	defer live.Process.Kill()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip(err)
	}
	here := proc.HostTag(proc.Hostname())
	liveTmp := atomicfile.TempName("last.safetensors", live.Process.Pid, here, "a")
	deadCkpt := atomicfile.TempName("last.safetensors", dead.Process.Pid, here, "b")
	deadBest := atomicfile.TempName("best.json", dead.Process.Pid, here, "c")
	legacy := ".last.safetensors.tmp-12345"
	for _, name := range []string{liveTmp, deadCkpt, deadBest, legacy} {
		os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644)
	}
	old := time.Now().Add(-2 * atomicfile.LegacyAge)
	os.Chtimes(filepath.Join(dir, legacy), old, old)

	m, err := NewManager(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Removed(), []string{legacy, deadBest, deadCkpt}; !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("removed %v, want %v", got, want)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{liveTmp}) {
		t.Errorf("directory holds %v, want only the live writer's %s", names, liveTmp)
	}
	// Once its writer is gone, a second manager removes it.
	live.Process.Kill()
	live.Wait()
	if m2, err := NewManager(dir, 0); err != nil || !slices.Equal(m2.Removed(), []string{liveTmp}) {
		t.Errorf("after the writer died: removed %v, %v", m2.Removed(), err)
	}
	for i := range 4 {
		if _, err := m.SaveNumbered(tiny(0), i, i*10); err != nil {
			t.Fatal(err)
		}
	}
	if list, _ := m.List(); len(list) != 0 {
		t.Errorf("keep 0 wrote %d numbered checkpoints, want none", len(list))
	}
	m, err = NewManager(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SaveNumbered(tiny(0), -1, 0); err == nil {
		t.Error("negative epoch accepted")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
