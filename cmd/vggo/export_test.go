package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A PyTorch state_dict (checkpoints/pth/testdata/gen.py) exported to ONNX and
// safetensors, the format from --format or from the extension.
func TestExportPyTorch(t *testing.T) {
	pth := filepath.Join("..", "..", "checkpoints", "pth", "testdata", "vgg16_bn_w64.pth")
	model := []string{"--checkpoint", pth, "--model", "vgg16-bn", "--width", "0.015625", "--input-size", "32x32", "--classes", "10"}
	dir := t.TempDir()
	for _, tc := range []struct {
		out, format, want string
	}{
		{"m.onnx", "", "(onnx,"},
		{"m.bin", "onnx", "(onnx,"},
		{"m.safetensors", "", "(safetensors,"},
	} {
		args := append([]string{"export", "--out", filepath.Join(dir, tc.out)}, model...)
		if tc.format != "" {
			args = append(args, "--format", tc.format)
		}
		code, out, errs := vggo(t, args...)
		if code != 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, "vgg16-bn, 84 tensors") {
			t.Errorf("export --out %s --format %q: exit %d, %q %q; want %q", tc.out, tc.format, code, out, errs, tc.want)
		}
		if st, err := os.Stat(filepath.Join(dir, tc.out)); err != nil || st.Size() < 10_000 {
			t.Errorf("%s: %v", tc.out, err)
		}
	}
	if code, _, errs := vggo(t, "export", "--checkpoint", pth, "--out", filepath.Join(dir, "x.onnx")); code != 1 || !strings.Contains(errs, "give --model") {
		t.Errorf("a .pth without --model: exit %d, %q; want 1 and the --model hint", code, errs)
	}
	if code, _, errs := vggo(t, append([]string{"export", "--out", "x", "--format", "tflite"}, model...)...); code != 2 || !strings.Contains(errs, "want safetensors or onnx") {
		t.Errorf("--format tflite: exit %d, %q; want 2", code, errs)
	}
}
