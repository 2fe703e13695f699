package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vggo/vggo/label"
)

// synthImage returns a w x h image whose pixels encode their coordinates
// (R = x, G = y, B = x^y, modulo 256).
func synthImage(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := m.PixOffset(x, y)
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = uint8(x), uint8(y), uint8(x^y), 255
		}
	}
	return m
}

// synthMask returns a w x h mask of horizontal bands of classes 0..classes-1,
// with a column of 255 at x = 0.
func synthMask(w, h, classes int) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := uint8(y * classes / h)
			if x == 0 {
				v = label.Ignore
			}
			m.Pix[y*m.Stride+x] = v
		}
	}
	return m
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeMask(t testing.TB, m *image.Gray) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeMask(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// vocSample is one sample to write with makeVOC.
type vocSample struct {
	id          string
	image, mask []byte
}

// makeVOC writes a VOC2012-style tree under dir with the given samples, all in
// split "train", and returns the VOC2012 folder.
func makeVOC(t testing.TB, dir string, samples []vocSample) string {
	t.Helper()
	root := filepath.Join(dir, "VOC2012")
	var ids []string
	for _, s := range samples {
		if s.image != nil {
			writeFile(t, filepath.Join(root, "JPEGImages", s.id+".jpg"), s.image)
		}
		if s.mask != nil {
			writeFile(t, filepath.Join(root, "SegmentationClass", s.id+".png"), s.mask)
		}
		ids = append(ids, s.id)
	}
	os.MkdirAll(filepath.Join(root, "JPEGImages"), 0o755)
	os.MkdirAll(filepath.Join(root, "SegmentationClass"), 0o755)
	writeFile(t, filepath.Join(root, "ImageSets", "Segmentation", "train.txt"), []byte(strings.Join(ids, "\n")+"\n"))
	return root
}

// goodSample returns a valid w x h sample.
func goodSample(t testing.TB, id string, w, h int) vocSample {
	return vocSample{id, encodeJPEG(t, synthImage(w, h)), encodeMask(t, synthMask(w, h, 21))}
}

// pngHeader returns a PNG signature and a valid IHDR chunk claiming w x h pixels
// of the given depth and colour type, with no image data.
func pngHeader(w, h uint32, depth, ctype byte) []byte {
	var b bytes.Buffer
	b.WriteString(pngSig)
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = depth, ctype
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return b.Bytes()
}

// memDataset is an in-memory dataset of synthetic samples of various sizes.
type memDataset struct {
	task label.Task
	n    int
	load func(i int) // called by Load, for counting
	bad  map[int]bool
}

func (d *memDataset) Len() int { return d.n }
func (d *memDataset) Sample(i int) Sample {
	return Sample{ID: idOf(i), ImagePath: "mem/" + idOf(i) + ".jpg", Label: i % 3}
}
func (d *memDataset) Task() label.Task { return d.task }
func (d *memDataset) ClassNames() []string {
	if d.task == label.Classification {
		return []string{"a", "b", "c"}
	}
	return label.VOCClasses()
}
func (d *memDataset) Load(i int) (Example, error) {
	if d.load != nil {
		d.load(i)
	}
	if d.bad[i] {
		return Example{}, &SampleError{ID: idOf(i), Path: "mem/" + idOf(i) + ".jpg", Err: errorf(ErrCorrupt, "corrupt JPEG: synthetic")}
	}
	w, h := 37+i%5*7, 29+i%3*11
	img := synthImage(w, h)
	for k := range img.Pix { // make samples differ
		if k%4 != 3 {
			img.Pix[k] += uint8(i * 13)
		}
	}
	ex := Example{ID: idOf(i), Image: img, Label: -1}
	if d.task == label.Segmentation {
		ex.Mask = synthMask(w, h, 21)
	} else {
		ex.Label = i % 3
	}
	return ex, nil
}

func idOf(i int) string { return "s" + string(rune('a'+i/26%26)) + string(rune('a'+i%26)) }
