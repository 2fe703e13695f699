package data

import (
	"bytes"
	"image"
	"strings"
	"testing"
	"unicode"

	"github.com/vggo/vggo/label"
)

// fuzzSeeds are small valid and broken images and masks.
func fuzzSeeds(t testing.TB) [][]byte {
	img := synthImage(9, 7)
	gray := image.NewGray(image.Rect(0, 0, 5, 3))
	jpg := encodeJPEG(t, img)
	mask := encodeMask(t, synthMask(9, 7, 21))
	pal4 := image.NewPaletted(image.Rect(0, 0, 5, 2), VOCPalette()[:16])
	return [][]byte{
		jpg, jpg[:len(jpg)/2], encodeJPEG(t, gray),
		encodePNG(t, img), encodePNG(t, gray), encodePNG(t, image.NewGray16(gray.Rect)),
		encodePNG(t, image.NewNRGBA(gray.Rect)), encodePNG(t, pal4),
		mask, mask[:len(mask)-20], mask[:40],
		pngHeader(20000, 20000, 8, 3), pngHeader(3, 3, 8, 0), pngHeader(1<<31, 1, 8, 2),
		{}, []byte("GIF89a"), {0xff, 0xd8},
	}
}

// FuzzDecodeImage: no input panics; a decoded image is opaque RGB within the
// size limit.
func FuzzDecodeImage(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := DecodeImage(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "data: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			return
		}
		w, h := img.Rect.Dx(), img.Rect.Dy()
		if img.Rect.Min != (image.Point{}) || w*h > MaxPixels || len(img.Pix) < 4*w*h {
			t.Fatalf("got bounds %v, %d bytes", img.Rect, len(img.Pix))
		}
		for i := 3; i < 4*w*h; i += 4 {
			if img.Pix[i] != 255 {
				t.Fatalf("pixel %d: alpha %d", i/4, img.Pix[i])
			}
		}
	})
}

// FuzzDecodeMask: no input panics; a decoded mask holds only values below the
// class count or 255.
func FuzzDecodeMask(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint8(20))
	}
	f.Fuzz(func(t *testing.T, b []byte, c uint8) {
		classes := 1 + int(c)%255
		m, err := DecodeMask(b, classes)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "data: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			return
		}
		for y := range m.Rect.Dy() {
			for _, v := range m.Pix[y*m.Stride : y*m.Stride+m.Rect.Dx()] {
				if int(v) >= classes && v != label.Ignore {
					t.Fatalf("value %d with %d classes", v, classes)
				}
			}
		}
	})
}

// FuzzParseSplit: no input panics; ids are non-empty, without spaces or slashes.
func FuzzParseSplit(f *testing.F) {
	for _, s := range []string{"2007_000032\n", "\r\n a \r\n\r\nb", "\ufeffx\n", "/JPEGImages/a.jpg /SegmentationClassAug/a.png\n",
		"a 1\nb -1\n", "", " \n", "../\n", "a\x00b\n", strings.Repeat("y", 70000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := ParseSplit(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(ids) == 0 {
			t.Fatal("no ids and no error")
		}
		for _, id := range ids {
			if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") || strings.IndexFunc(id, unicode.IsSpace) >= 0 {
				t.Fatalf("bad id %q", id)
			}
		}
	})
}
