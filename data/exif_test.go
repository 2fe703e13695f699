package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// exifSegment is an APP1 segment holding a TIFF header whose first IFD has the
// orientation tag (and one tag before it), in the given byte order.
func exifSegment(o int, bo binary.ByteOrder) []byte {
	var t bytes.Buffer
	if bo == binary.LittleEndian {
		t.WriteString("II")
	} else {
		t.WriteString("MM")
	}
	w := func(v any) { _ = binary.Write(&t, bo, v) }
	w(uint16(42))
	w(uint32(8))
	w(uint16(2)) // entries
	w(uint16(0x010f))
	w(uint16(2))
	w(uint32(4))
	w([4]byte{}) // Make, ASCII
	w(uint16(0x0112))
	w(uint16(3))
	w(uint32(1))
	w(uint16(o))
	w(uint16(0))
	w(uint32(0))
	body := append([]byte("Exif\x00\x00"), t.Bytes()...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	return append(seg, body...)
}

// withEXIF inserts an EXIF segment right after the JPEG's SOI marker.
func withEXIF(jpg []byte, seg []byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestJPEGOrientation(t *testing.T) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	for o := 1; o <= 8; o++ {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			if got := jpegOrientation(withEXIF(plain, exifSegment(o, bo))); got != o {
				t.Errorf("orientation %d (%v): got %d", o, bo, got)
			}
		}
	}
	bad := map[string][]byte{
		"no exif":      plain,
		"truncated":    withEXIF(plain, exifSegment(6, binary.BigEndian))[:30],
		"bad tiff":     withEXIF(plain, append([]byte{0xff, 0xe1, 0, 16}, []byte("Exif\x00\x00XX\x00\x2a\x00\x00\x00\x08")...)),
		"value 9":      withEXIF(plain, exifSegment(9, binary.BigEndian)),
		"not a jpeg":   []byte("\x89PNG\r\n\x1a\n"),
		"length short": {0xff, 0xd8, 0xff, 0xe1, 0x00, 0x01},
	}
	for name, b := range bad {
		if got := jpegOrientation(b); got != 1 {
			t.Errorf("%s: got %d, want 1", name, got)
		}
	}
}

// TestOrient checks the eight orientations on a 3x2 image whose pixels are numbered
// 0..5 in row order: the tables are how each orientation displays it.
func TestOrient(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := range 6 {
		src.SetRGBA(i%3, i/3, color.RGBA{uint8(i), 0, 0, 255})
	}
	want := map[int][][]int{
		1: {{0, 1, 2}, {3, 4, 5}},
		2: {{2, 1, 0}, {5, 4, 3}},
		3: {{5, 4, 3}, {2, 1, 0}},
		4: {{3, 4, 5}, {0, 1, 2}},
		5: {{0, 3}, {1, 4}, {2, 5}},
		6: {{3, 0}, {4, 1}, {5, 2}},
		7: {{5, 2}, {4, 1}, {3, 0}},
		8: {{2, 5}, {1, 4}, {0, 3}},
	}
	for o, rows := range want {
		got := orient(src, o)
		if got.Rect.Dx() != len(rows[0]) || got.Rect.Dy() != len(rows) {
			t.Errorf("orientation %d: size %v, want %dx%d", o, got.Rect.Size(), len(rows[0]), len(rows))
			continue
		}
		for y, row := range rows {
			for x, v := range row {
				if p := got.RGBAAt(x, y).R; int(p) != v {
					t.Errorf("orientation %d: pixel (%d,%d) = %d, want %d", o, x, y, p, v)
				}
			}
		}
	}
}

// TestDecodeImageHonoursEXIF decodes a JPEG stored sideways (orientation 6: turn 90°
// clockwise to view): a 16x8 image, red left and blue right, comes out 8x16, red on top.
func TestDecodeImageHonoursEXIF(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 16, 8))
	for y := range 8 {
		for x := range 16 {
			c := color.RGBA{255, 0, 0, 255}
			if x >= 8 {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeImage(withEXIF(buf.Bytes(), exifSegment(6, binary.LittleEndian)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Rect.Dx() != 8 || got.Rect.Dy() != 16 {
		t.Fatalf("size %v, want 8x16", got.Rect.Size())
	}
	if top, bottom := got.RGBAAt(4, 2), got.RGBAAt(4, 13); top.R < 200 || bottom.B < 200 {
		t.Errorf("top %v, bottom %v: want red on top, blue below", top, bottom)
	}
}

func TestDecodeImageMax(t *testing.T) {
	_, err := DecodeImageMax(pngHeader(2000, 2000, 8, 2), 1<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}
