package checkpoints

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// diverged returns a checkpoint whose encoder.0.weight holds 12 NaN and whose
// running_var holds 2 NaN and 1 +Inf, among finite tensors.
func diverged() *File {
	w := make([]float32, 30)
	for i := range 12 {
		w[2*i] = float32(math.NaN())
	}
	return &File{Tensors: []Tensor{
		{Name: "encoder.0.weight", Shape: []int{30}, Data: w},
		{Name: "encoder.0.bias", Shape: []int{2}, Data: []float32{1, 2}},
		{Name: "encoder.1.running_var", Shape: []int{4}, Data: []float32{float32(math.NaN()), 1, float32(math.Inf(1)), float32(math.NaN())}},
		{Name: "optim.step", DType: I64, Shape: []int{}, I64: []int64{7}},
	}}
}

func TestCheckFinite(t *testing.T) {
	if err := CheckFinite(finiteFile().Tensors); err != nil {
		t.Errorf("finite tensors: %v", err)
	}
	if err := CheckFinite(nil); err != nil {
		t.Errorf("no tensors: %v", err)
	}
	err := CheckFinite(diverged().Tensors)
	var nf *NonFiniteError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNonFinite) {
		t.Fatalf("got %v, want a *NonFiniteError", err)
	}
	want := []NonFinite{{Name: "encoder.0.weight", NaN: 12}, {Name: "encoder.1.running_var", NaN: 2, Inf: 1}}
	if !slices.Equal(nf.Tensors, want) {
		t.Errorf("got %+v, want %+v", nf.Tensors, want)
	}
	const msg = "checkpoints: tensor encoder.0.weight has 12 non-finite values (12 NaN); tensor encoder.1.running_var has 3 non-finite values (2 NaN, 1 Inf)"
	if err.Error() != msg {
		t.Errorf("message:\n got %s\nwant %s", err, msg)
	}

	// Many offenders: the first three are named, the rest summed; F64 counts too.
	var many []Tensor
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		many = append(many, Tensor{Name: name, Shape: []int{2}, Data: []float32{float32(math.Inf(-1)), 0}})
	}
	many = append(many, Tensor{Name: "f", DType: F64, Shape: []int{3}, F64: []float64{math.NaN(), math.NaN(), 1}})
	err = CheckFinite(many)
	if !strings.HasSuffix(err.Error(), "tensor c has 1 non-finite values (1 Inf); and 3 more tensors (4 values)") {
		t.Errorf("many: %v", err)
	}
	// Large finite values, zeros of both signs and subnormals are finite.
	ok := []Tensor{{Name: "x", Shape: []int{5}, Data: []float32{math.MaxFloat32, -math.MaxFloat32, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, 0}}}
	if err := CheckFinite(ok); err != nil {
		t.Errorf("extremes: %v", err)
	}
	// A NaN at every position of a 7-value tensor (the fast path's blocks and tail).
	for i := range 7 {
		v := []float32{1, 2, 3, 4, 5, 6, 7}
		v[i] = float32(math.NaN())
		if err := CheckFinite([]Tensor{{Name: "v", Shape: []int{7}, Data: v}}); err == nil {
			t.Errorf("NaN at %d not found", i)
		}
	}
}

func TestSaveRefusesNonFinite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "last.safetensors")
	err := Save(path, diverged())
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Path != path || nf.Op != "save" ||
		!strings.HasPrefix(err.Error(), "checkpoints: save "+path+": refusing to write non-finite state: tensor encoder.0.weight has 12 non-finite values") {
		t.Errorf("got %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("a refused save left %v", names)
	}
}

func TestLoadRefusesNonFinite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := saveRaw(path, diverged()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	for _, c := range []struct {
		name string
		load func() (*File, error)
	}{
		{"Load", func() (*File, error) { return Load(path) }},
		{"LoadBytes", func() (*File, error) { return LoadBytes(raw, path) }},
	} {
		f, err := c.load()
		var nf *NonFiniteError
		if f != nil || !errors.As(err, &nf) || nf.Path != path || len(nf.Tensors) != 2 ||
			!strings.HasPrefix(err.Error(), "checkpoints: "+path+": tensor encoder.0.weight has 12 non-finite values (12 NaN); tensor encoder.1.running_var has 3") ||
			!strings.Contains(err.Error(), "use an earlier checkpoint") {
			t.Errorf("%s: got %v, %v", c.name, f, err)
		}
	}
}

func BenchmarkCheckFinite(b *testing.B) {
	ts := []Tensor{{Name: "w", Shape: []int{1 << 20}, Data: make([]float32, 1<<20)}}
	b.SetBytes(4 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckFinite(ts); err != nil {
			b.Fatal(err)
		}
	}
}
