package checkpoints_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/checkpoints/pth"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/train"
)

// The fixtures are written by checkpoints/pth/testdata/gen.py.
func fixture(name string) string { return filepath.Join("pth", "testdata", name) }

func TestLoadPyTorch(t *testing.T) {
	b, err := os.ReadFile(fixture("checkpoint.pth"))
	if err != nil {
		t.Fatal(err)
	}
	fromBytes, err := checkpoints.LoadBytes(b, "checkpoint.pth")
	if err != nil {
		t.Fatal(err)
	}
	f, err := checkpoints.Load(fixture("checkpoint.pth"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*checkpoints.File{f, fromBytes} {
		if got := f.Source(); got != `PyTorch zip file, state_dict under "model"` {
			t.Errorf("Source() = %q", got)
		}
		if len(f.Tensors) != 6 || f.Tensors[0].Name != "conv.weight" || f.Tensors[0].DType != checkpoints.F32 || len(f.Tensors[0].Data) != 108 {
			t.Errorf("tensors %v: want 6, conv.weight F32 [4 3 3 3] first", f.Specs())
		}
	}
	h, err := checkpoints.Inspect(fixture("state_dict_legacy.pth"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata[checkpoints.MetaSourceFormat] != "pytorch-legacy" || len(h.Specs) != 14 || h.Specs[13].DType != checkpoints.I64 {
		t.Errorf("Inspect: metadata %v, specs %v", h.Metadata, h.Specs)
	}
}

func TestLoadPyTorchErrors(t *testing.T) {
	_, err := checkpoints.Load(fixture("nonfinite.pth"))
	var nf *checkpoints.NonFiniteError
	if !errors.As(err, &nf) || nf.Tensors[0].NaN != 1 || nf.Tensors[0].Inf != 1 {
		t.Errorf("nonfinite.pth: got %v, want a *NonFiniteError naming w (1 NaN, 1 Inf)", err)
	}
	_, err = checkpoints.Load(fixture("module.pth"))
	var ge *pth.GlobalError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "holds a pickled torchvision.models.vgg.VGG object, not a state_dict") {
		t.Errorf("module.pth: got %v", err)
	}
	_, _, err = train.OpenModel(fixture("vgg16_bn_w64.pth"))
	if err == nil || !strings.Contains(err.Error(), "give --model") {
		t.Errorf("OpenModel of a .pth: got %v, want the --model hint", err)
	}
	_, _, err = train.OpenModelAs(fixture("vgg16_bn_w64.pth"), graphs.Config{Arch: "vgg16", Mult: 1.0 / 64, InputH: 32, Classes: 10})
	var me *checkpoints.MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "with or without batch norm") {
		t.Errorf("vgg16_bn weights into vgg16: got %v, want a *MismatchError", err)
	}
}

// TestPyTorchLogits loads a tiny vgg16_bn saved by PyTorch and checks that vggo computes
// the logits PyTorch computed on the same input.
func TestPyTorchLogits(t *testing.T) {
	m, _, err := train.OpenModelAs(fixture("vgg16_bn_w64.pth"), graphs.Config{Arch: "vgg16-bn", Mult: 1.0 / 64, InputH: 32, Classes: 10})
	if err != nil {
		t.Fatal(err)
	}
	io, err := checkpoints.Load(fixture("vgg16_bn_w64_io.pth"))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := io.Tensor("input")
	want, _ := io.Tensor("logits")
	ev := train.NewEvaluator(m)
	defer ev.Close()
	got, err := ev.Logits(x.Data, x.Shape[0], x.Shape[2], x.Shape[3])
	if err != nil {
		t.Fatal(err)
	}
	var maxAbs, maxDiff float64
	for i := range want.Data {
		maxAbs = max(maxAbs, math.Abs(float64(want.Data[i])))
		maxDiff = max(maxDiff, math.Abs(float64(got[i]-want.Data[i])))
	}
	if maxDiff > 1e-4*maxAbs {
		t.Errorf("max |vggo - torch| = %g, want <= 1e-4 × max |logit| (%g)", maxDiff, maxAbs)
	}
}

// TestPretrainedFromPyTorch fills vgg16-segnet's encoder from a torchvision-layout
// vgg16_bn state_dict file, as vggo train --pretrained does.
func TestPretrainedFromPyTorch(t *testing.T) {
	m, err := graphs.New(graphs.Config{Arch: "vgg16-segnet", Mult: 1.0 / 64})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := train.LoadPretrained(m, fixture("vgg16_bn_w64.pth"))
	if err != nil {
		t.Fatal(err)
	}
	// 13 conv (weight, bias) + 13 batch norms (4 tensors); the classifier is skipped.
	if len(rep.Loaded) != 13*2+13*4 || len(rep.Skipped) != 6 {
		t.Errorf("loaded %d, skipped %v; want 78 and the classifier's 6", len(rep.Loaded), rep.Skipped)
	}
	if why := rep.Skipped["classifier.0.weight"]; !strings.Contains(why, "no such tensor") {
		t.Errorf("classifier.0.weight skipped because %q", why)
	}
}
