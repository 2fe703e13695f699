package pth

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readFile reads a fixture of testdata (written by testdata/gen.py).
func readFile(t *testing.T, name string, opt Options) (*File, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Read(bytes.NewReader(b), int64(len(b)), name, opt)
}

type want struct {
	Shape  []int     `json:"shape"`
	DType  string    `json:"dtype"`
	Values []float64 `json:"values"`
}

func TestReadStateDict(t *testing.T) {
	raw, err := os.ReadFile("testdata/state_dict.json")
	if err != nil {
		t.Fatal(err)
	}
	var wants map[string]want
	if err := json.Unmarshal(raw, &wants); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, format string }{{"state_dict.pth", "zip"}, {"state_dict_legacy.pth", "legacy"}} {
		t.Run(tc.format, func(t *testing.T) {
			f, err := readFile(t, tc.file, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Format != tc.format || f.Key != "" || f.Prefix != "" {
				t.Errorf("format %q key %q prefix %q, want %q, \"\", \"\"", f.Format, f.Key, f.Prefix, tc.format)
			}
			if !slices.Equal(f.Skipped, []string{"bn.num_batches_tracked"}) {
				t.Errorf("skipped %v, want [bn.num_batches_tracked]", f.Skipped)
			}
			var names []string
			for _, tt := range f.Tensors {
				names = append(names, tt.Name)
				w, ok := wants[tt.Name]
				if !ok {
					t.Errorf("unexpected tensor %s", tt.Name)
					continue
				}
				if !slices.Equal(tt.Shape, w.Shape) || string(tt.DType) != w.DType {
					t.Errorf("%s: shape %v dtype %s, want %v %s", tt.Name, tt.Shape, tt.DType, w.Shape, w.DType)
				}
				n := max(len(tt.Data), len(tt.I64))
				if n != len(w.Values) {
					t.Errorf("%s: %d values, want %d", tt.Name, n, len(w.Values))
					continue
				}
				for i, v := range w.Values {
					var got float64
					if tt.Data != nil {
						got, v = float64(tt.Data[i]), float64(float32(v))
					} else {
						got = float64(tt.I64[i])
					}
					if got != v {
						t.Errorf("%s[%d] = %v, want %v", tt.Name, i, got, v)
						break
					}
				}
			}
			if len(names) != len(wants)-1 || names[0] != "conv.weight" || names[len(names)-1] != "long" {
				t.Errorf("tensors %v: want the state_dict's order without num_batches_tracked", names)
			}
		})
	}
}

func TestReadTrainingCheckpoint(t *testing.T) {
	for _, tc := range []struct{ file, key, prefix string }{
		{"checkpoint.pth", "model", ""},
		{"dataparallel.pth", "state_dict", "module."},
	} {
		f, err := readFile(t, tc.file, Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		var names []string
		for _, tt := range f.Tensors {
			names = append(names, tt.Name)
		}
		wantNames := []string{"conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}
		if f.Key != tc.key || f.Prefix != tc.prefix || !slices.Equal(names, wantNames) {
			t.Errorf("%s: key %q prefix %q tensors %v, want %q %q %v", tc.file, f.Key, f.Prefix, names, tc.key, tc.prefix, wantNames)
		}
	}
}

func TestReadNoData(t *testing.T) {
	f, err := readFile(t, "state_dict.pth", Options{NoData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 14 || f.Tensors[0].Data != nil || !slices.Equal(f.Tensors[0].Shape, []int{4, 3, 3, 3}) {
		t.Errorf("got %d tensors, first %+v; want 14, conv.weight [4 3 3 3] without data", len(f.Tensors), f.Tensors[0])
	}
}

func TestReadRefusesCode(t *testing.T) {
	for _, tc := range []struct{ file, msg string }{
		{"module.pth", "pth: module.pth holds a pickled torchvision.models.vgg.VGG object, not a state_dict: re-save it with torch.save(model.state_dict(), ...)"},
		{"evil.pth", "pth: evil.pth: refusing the pickled global posix.system"},
	} {
		_, err := readFile(t, tc.file, Options{})
		var ge *GlobalError
		if !errors.As(err, &ge) || !strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want a *GlobalError %q", tc.file, err, tc.msg)
		}
	}
}

// zipWith returns the bytes of a zip archive holding the given files.
func zipWith(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for name, body := range files {
		fw, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(body))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadBadInput(t *testing.T) {
	good, err := os.ReadFile("testdata/state_dict.pth")
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the first tensor storage (data/0).
	corrupt := slices.Clone(good)
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data/0") {
			off, err := f.DataOffset()
			if err != nil {
				t.Fatal(err)
			}
			corrupt[off+5] ^= 0x40
		}
	}
	legacy, err := os.ReadFile("testdata/state_dict_legacy.pth")
	if err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile("testdata/list.pth")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		err  error
		msg  string
	}{
		{"truncated zip", good[:len(good)/2], ErrTruncated, "truncated or damaged zip"},
		{"truncated legacy", legacy[:len(legacy)-100], ErrTruncated, "ends early"},
		{"corrupt storage", corrupt, ErrCorrupt, "fails its CRC-32 check"},
		{"other zip", zipWith(t, map[string]string{"notes/readme.txt": "hello"}), nil, "without data.pkl"},
		{"torchscript", zipWith(t, map[string]string{"m/constants.pkl": "", "m/code/x.py": ""}), nil, "TorchScript"},
		{"missing storage", zipWith(t, map[string]string{"a/data.pkl": string(pickleOf(t, "state_dict.pth"))}), nil, "missing from the archive"},
		{"not pytorch", []byte("hello, world"), nil, "not a PyTorch file"},
		{"a list", list, nil, "holds a list, not a state_dict"},
		{"bad pickle", zipWith(t, map[string]string{"a/data.pkl": "\x80\x02}q\x00(X\x01\x00\x00\x00ah\x05u."}), nil, "memo entry 5 read before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)), "x.pth", Options{})
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.msg) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("got %v, want a *FormatError with %q (errors.Is %v)", err, tc.msg, tc.err)
			}
		})
	}
}

// pickleOf returns the data.pkl of a fixture.
func pickleOf(t *testing.T, name string) []byte {
	t.Helper()
	zr, err := zip.OpenReader(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data.pkl") {
			rc, _ := f.Open()
			defer rc.Close()
			var b bytes.Buffer
			b.ReadFrom(rc)
			return b.Bytes()
		}
	}
	t.Fatalf("%s has no data.pkl", name)
	return nil
}

func TestHalfToFloat32(t *testing.T) {
	for _, tc := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.333251953125}, {0x7bff, 65504},
		{0x0001, 5.960464477539063e-08}, {0x03ff, 6.097555160522461e-05}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := halfToFloat32(tc.h); got != tc.want {
			t.Errorf("halfToFloat32(%#04x) = %v, want %v", tc.h, got, tc.want)
		}
	}
	if got := halfToFloat32(0x7e00); got == got {
		t.Errorf("halfToFloat32(0x7e00) = %v, want NaN", got)
	}
}

func TestSniff(t *testing.T) {
	st := append([]byte{0x80, 0x02, 0, 0, 0, 0, 0, 0}, `{"a":{"dtype":"F32"`...) // a safetensors header of 640 bytes
	for _, tc := range []struct {
		head []byte
		want string
	}{
		{[]byte("PK\x03\x04\x00\x00"), "zip"},
		{legacyMagic, "legacy"},
		{st, ""},
		{nil, ""},
	} {
		if got := Sniff(tc.head); got != tc.want {
			t.Errorf("Sniff(%q) = %q, want %q", tc.head, got, tc.want)
		}
	}
}
