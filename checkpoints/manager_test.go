package checkpoints

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
	stale := filepath.Join(dir, ".last.safetensors.tmp-12345")
	os.WriteFile(stale, []byte("partial"), 0o644)
	m, err := NewManager(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file survived NewManager: %v", err)
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
