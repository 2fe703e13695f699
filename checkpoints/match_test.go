package checkpoints

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func specFile(specs ...Spec) *File {
	f := &File{}
	for _, s := range specs {
		t := Tensor{Name: s.Name, DType: s.DType, Shape: s.Shape}
		n := t.Numel()
		switch s.DType.orF32() {
		case F32:
			t.Data = make([]float32, n)
		case I64:
			t.I64 = make([]int64, n)
		}
		f.Tensors = append(f.Tensors, t)
	}
	return f
}

func TestMatch(t *testing.T) {
	model := []Spec{
		{Name: "features.0.weight", Shape: []int{64, 3, 3, 3}},
		{Name: "features.0.bias", Shape: []int{64}},
		{Name: "classifier.6.weight", Shape: []int{21, 4096}},
		{Name: "classifier.6.bias", Shape: []int{21}},
	}
	t.Run("exact", func(t *testing.T) {
		d := Match(model, specFile(model...))
		if !d.OK() || d.Err("x") != nil {
			t.Errorf("got %+v", d)
		}
	})
	t.Run("class count", func(t *testing.T) {
		f := specFile(model[0], model[1], Spec{Name: "classifier.6.weight", Shape: []int{1000, 4096}}, Spec{Name: "classifier.6.bias", Shape: []int{1000}})
		err := Match(model, f).Err("vgg16.safetensors")
		var me *MismatchError
		if !errors.As(err, &me) || len(me.Diff.Mismatched) != 2 {
			t.Fatalf("got %v", err)
		}
		msg := err.Error()
		for _, want := range []string{
			"checkpoints: vgg16.safetensors does not fit the model",
			"a different class count: the file has 1000 classes, the model 21",
			"classifier.6.weight: file has [1000 4096], model wants [21 4096]",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
	})
	t.Run("architecture", func(t *testing.T) {
		f := specFile(model[0], model[1], Spec{Name: "classifier.6.weight", Shape: []int{21, 4096}}, Spec{Name: "features.1.weight", Shape: []int{64}}, Spec{Name: "features.1.num_batches_tracked", DType: I64, Shape: []int{}})
		d := Match(model, f)
		if len(d.Missing) != 1 || d.Missing[0].Name != "classifier.6.bias" || len(d.Unexpected) != 2 {
			t.Fatalf("got %+v", d)
		}
		msg := d.Err("bn.safetensors").Error()
		for _, want := range []string{"different architecture", "missing from the file: classifier.6.bias [21]", "not in the model: features.1.num_batches_tracked I64[]"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
	})
	t.Run("dtype", func(t *testing.T) {
		d := Match([]Spec{{Name: "n", DType: I64, Shape: []int{}}}, specFile(Spec{Name: "n", Shape: []int{}}))
		if len(d.Mismatched) != 1 || !strings.Contains(d.Err("f").Error(), "file has [], model wants I64[]") {
			t.Errorf("got %v", d.Err("f"))
		}
	})
	t.Run("long list is cut", func(t *testing.T) {
		var want []Spec
		for i := range 30 {
			want = append(want, Spec{Name: fmt.Sprintf("layer%d", i), Shape: []int{i + 1}})
		}
		msg := Match(want, &File{}).Err("empty").Error()
		if lines := strings.Count(msg, "\n"); lines != 21 || !strings.HasSuffix(msg, "\n  and 10 more") {
			t.Errorf("got %d lines:\n%s", lines, msg)
		}
	})
}
