package data

import (
	"bytes"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vggo/vggo/label"
)

func TestVOCColormap(t *testing.T) {
	for _, tc := range []struct {
		i    uint8
		want color.RGBA
	}{
		{0, color.RGBA{0, 0, 0, 255}},
		{1, color.RGBA{128, 0, 0, 255}},
		{2, color.RGBA{0, 128, 0, 255}},
		{15, color.RGBA{192, 128, 128, 255}}, // person
		{20, color.RGBA{0, 64, 128, 255}},    // tvmonitor
		{255, color.RGBA{224, 224, 192, 255}},
	} {
		if got := VOCColor(tc.i); got != tc.want {
			t.Errorf("VOCColor(%d): got %v, want %v", tc.i, got, tc.want)
		}
	}
	p := VOCPalette()
	if len(p) != 256 || p[15] != VOCColor(15) {
		t.Errorf("VOCPalette: got %d entries, [15] = %v", len(p), p[15])
	}
}

func TestParseSplit(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"lf", "2007_000032\n2007_000039\n", []string{"2007_000032", "2007_000039"}},
		{"crlf, spaces, blank lines", "\r\n  2007_000032 \r\n\r\n\t2007_000039\r\n   \r\n", []string{"2007_000032", "2007_000039"}},
		{"no final newline", "a\nb", []string{"a", "b"}},
		{"bom", "\ufeffa\n", []string{"a"}},
		{"first field", "2008_000008  1\n2008_000015 -1\n", []string{"2008_000008", "2008_000015"}},
		{"train_aug paths", "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n", []string{"2007_000032"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSplit(strings.NewReader(tc.in))
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, %v, want %q", got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "lists no ids"},
		{"blank", "\r\n  \n\n", "lists no ids"},
		{"dots", "a\n../\n", "line 2"},
		{"long line", strings.Repeat("x", 1<<17), "longer than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSplit(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestOpenVOCRoots(t *testing.T) {
	dir := t.TempDir()
	voc := makeVOC(t, filepath.Join(dir, "VOCdevkit"), []vocSample{goodSample(t, "a", 8, 6)})
	for _, root := range []string{voc, filepath.Join(dir, "VOCdevkit"), dir} {
		v, err := OpenVOC(root, "train", VOCOptions{})
		if err != nil {
			t.Fatalf("OpenVOC(%s): %v", root, err)
		}
		if v.Root() != voc || v.Len() != 1 || v.Sample(0).ImagePath != filepath.Join(voc, "JPEGImages", "a.jpg") {
			t.Errorf("OpenVOC(%s): got root %s, %d samples, %+v", root, v.Root(), v.Len(), v.Sample(0))
		}
	}
	_, err := OpenVOC(filepath.Join(dir, "VOCdevkit", "VOC2012", "JPEGImages"), "train", VOCOptions{})
	if err == nil || !strings.Contains(err.Error(), "no VOC dataset under") || !strings.Contains(err.Error(), "VOCdevkit/VOC2012/JPEGImages") {
		t.Errorf("got %v, want a no VOC dataset error", err)
	}
	_, err = OpenVOC(filepath.Join(dir, "nope"), "train", VOCOptions{})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("got %v, want no such file", err)
	}
}

func TestOpenVOCErrors(t *testing.T) {
	voc := makeVOC(t, t.TempDir(), []vocSample{goodSample(t, "a", 8, 6)})
	splitDir := filepath.Join(voc, "ImageSets", "Segmentation")

	_, err := OpenVOC(voc, "val", VOCOptions{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(splitDir, "val.txt")) || !strings.Contains(err.Error(), "available splits: train") {
		t.Errorf("missing split: got %v", err)
	}
	writeFile(t, filepath.Join(splitDir, "empty.txt"), []byte("\r\n \r\n"))
	_, err = OpenVOC(voc, "empty", VOCOptions{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(splitDir, "empty.txt")) || !strings.Contains(err.Error(), "lists no ids") {
		t.Errorf("empty split: got %v", err)
	}
	_, err = OpenVOC(voc, "train", VOCOptions{MaskDir: "SegmentationClassAug"})
	if err == nil || !strings.Contains(err.Error(), "SegmentationClassAug not found") {
		t.Errorf("missing mask dir: got %v", err)
	}
	for _, n := range []int{-1, 256} {
		if _, err := OpenVOC(voc, "train", VOCOptions{Classes: n}); err == nil || !strings.Contains(err.Error(), "want 1..255") {
			t.Errorf("classes %d: got %v", n, err)
		}
	}
	if _, err := OpenVOC(voc, "train", VOCOptions{Classes: 3, ClassNames: []string{"a"}}); err == nil {
		t.Error("1 name for 3 classes: got nil error")
	}
	// A split given as a file path.
	list := filepath.Join(t.TempDir(), "mine.txt")
	writeFile(t, list, []byte("a\n"))
	if v, err := OpenVOC(voc, list, VOCOptions{}); err != nil || v.Len() != 1 {
		t.Errorf("split file path: got %v", err)
	}
}

func TestOpenVOCAugGrayMasks(t *testing.T) {
	voc := makeVOC(t, t.TempDir(), []vocSample{{"a", encodeJPEG(t, synthImage(8, 6)), nil}})
	m := synthMask(8, 6, 3)
	writeFile(t, filepath.Join(voc, "SegmentationClassAug", "a.png"), encodePNG(t, m)) // 8-bit gray
	v, err := OpenVOC(voc, "train", VOCOptions{MaskDir: "SegmentationClassAug", Classes: 3})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := v.Load(0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ex.Mask.Pix, m.Pix) || ex.Label != -1 || ex.ID != "a" {
		t.Errorf("got mask %v, want %v", ex.Mask.Pix, m.Pix)
	}
	if got := v.ClassNames(); !reflect.DeepEqual(got, []string{"background", "aeroplane", "bicycle"}) {
		t.Errorf("got names %v", got)
	}
}

// TestTestdataVOC reads the one-image tree in testdata/ (a VOCdevkit folder, CRLF
// split file).
func TestTestdataVOC(t *testing.T) {
	v, err := OpenVOC("testdata", "train", VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 1 || v.Sample(0).ID != "2007_000032" || v.Task() != label.Segmentation {
		t.Fatalf("got %d samples, %+v", v.Len(), v.Sample(0))
	}
	ex, err := v.Load(0)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Image.Rect.Dx() != 40 || ex.Image.Rect.Dy() != 30 {
		t.Errorf("got image %v, want 40x30", ex.Image.Rect)
	}
	var hist [256]int
	for _, p := range ex.Mask.Pix {
		hist[p]++
	}
	if hist[1] == 0 || hist[15] == 0 || hist[255] == 0 || hist[0] == 0 {
		t.Errorf("got mask values %v, want 0, 1, 15 and 255", hist)
	}
	if _, err := os.Stat(filepath.Join(v.Root(), "JPEGImages")); err != nil {
		t.Error(err)
	}
}

func TestEncodeMaskRoundTrip(t *testing.T) {
	m := synthMask(13, 21, 21)
	b := encodeMask(t, m)
	if b[24] != 8 || b[25] != 3 {
		t.Fatalf("got depth %d colour type %d, want an 8-bit palette PNG", b[24], b[25])
	}
	got, err := DecodeMask(b, 21)
	if err != nil || !bytes.Equal(got.Pix, m.Pix) {
		t.Fatalf("got %v, %v", got, err)
	}
}
