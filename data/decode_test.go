package data

import (
	"errors"
	"image"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInputs loads one bad sample per case and checks that the error is a
// *SampleError naming the file at fault and the problem, of the right kind.
func TestBadInputs(t *testing.T) {
	good := goodSample(t, "x", 24, 16)
	jpg := good.image
	msk := good.mask
	rgbMask := encodePNG(t, synthImage(24, 16))
	gray16 := image.NewGray16(image.Rect(0, 0, 24, 16))
	m37 := synthMask(24, 16, 21)
	for i := range 5 {
		m37.Pix[i+1] = 37
	}
	huge := pngHeader(20000, 20000, 8, 3)

	cases := []struct {
		name        string
		image, mask []byte
		badFile     string // "image" or "mask"
		kind        error
		want        []string // substrings of the message
	}{
		{"corrupt jpeg", jpg[:len(jpg)/2], msk, "image", ErrCorrupt, []string{"corrupt JPEG"}},
		{"jpeg garbage", append(append([]byte{}, jpg[:20]...), make([]byte, 200)...), msk, "image", ErrCorrupt, []string{"corrupt JPEG"}},
		{"truncated png mask", jpg, msk[:len(msk)*2/3], "mask", ErrCorrupt, []string{"corrupt PNG"}},
		{"truncated png header", jpg, msk[:20], "mask", ErrCorrupt, []string{"truncated"}},
		{"rgb mask", jpg, rgbMask, "mask", ErrFormat, []string{"RGB colour PNG", "palette", "grayscale"}},
		{"16-bit mask", jpg, encodePNG(t, gray16), "mask", ErrFormat, []string{"16-bit grayscale", "8-bit"}},
		{"jpeg mask", jpg, jpg, "mask", ErrFormat, []string{"mask is a JPEG"}},
		{"mask value 37", jpg, encodeMask(t, m37), "mask", ErrMaskValue, []string{"value 37 (5 pixels)", "< 21 or 255"}},
		{"size mismatch", jpg, encodeMask(t, synthMask(20, 16, 21)), "mask", ErrSizeMismatch, []string{"20x16", "24x16", "same size"}},
		{"missing image", nil, msk, "image", fs.ErrNotExist, []string{"no such file"}},
		{"missing mask", jpg, nil, "mask", fs.ErrNotExist, []string{"no such file"}},
		{"huge image header", huge, msk, "image", ErrTooLarge, []string{"20000x20000", "megapixel"}},
		{"huge mask header", jpg, huge, "mask", ErrTooLarge, []string{"20000x20000", "megapixel"}},
		{"text image", []byte("hello, world"), msk, "image", ErrFormat, []string{"not a JPEG or PNG"}},
		{"empty image", []byte{}, msk, "image", ErrCorrupt, []string{"empty file"}},
		{"zero-size png header", pngHeader(0, 5, 8, 2), msk, "image", ErrCorrupt, []string{"PNG"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := makeVOC(t, t.TempDir(), []vocSample{{"x", tc.image, tc.mask}})
			v, err := OpenVOC(root, "train", VOCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Load(0)
			if err == nil {
				t.Fatal("Load: got nil error")
			}
			var se *SampleError
			if !errors.As(err, &se) {
				t.Fatalf("got %T %v, want a *SampleError", err, err)
			}
			path := v.Sample(0).ImagePath
			if tc.badFile == "mask" {
				path = v.Sample(0).MaskPath
			}
			if se.Path != path || se.ID != "x" {
				t.Errorf("got path %q id %q, want %q, x", se.Path, se.ID, path)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "data: "+path+": ") {
				t.Errorf("got %q, want it to start with data: %s: ", msg, path)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got %q, want it to contain %q", msg, w)
				}
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("got %v, want errors.Is %v", err, tc.kind)
			}
		})
	}
}

func TestBothFilesBad(t *testing.T) {
	root := makeVOC(t, t.TempDir(), []vocSample{{"x", []byte("junk"), encodePNG(t, synthImage(4, 4))}})
	v, err := OpenVOC(root, "train", VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Load(0)
	errs := splitErrors(err)
	if len(errs) != 2 || !errors.Is(errs[0], ErrFormat) || !errors.Is(errs[1], ErrFormat) {
		t.Fatalf("got %v, want an image and a mask ErrFormat", err)
	}
	if !strings.Contains(errs[0].Error(), "JPEGImages") || !strings.Contains(errs[1].Error(), "SegmentationClass") {
		t.Errorf("got %v, want both files named", err)
	}
}

func TestDecodeImageColorModels(t *testing.T) {
	gray := image.NewGray(image.Rect(0, 0, 16, 8))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 2)
	}
	cmyk := image.NewCMYK(image.Rect(0, 0, 3, 2))
	copy(cmyk.Pix, []uint8{0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255, 0, 255, 255, 0, 0, 0, 0, 128, 10, 20, 30, 40})
	nrgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(nrgba.Pix, []uint8{200, 100, 50, 0, 1, 2, 3, 128})
	pal := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.RGBA{10, 20, 30, 255}, color.NRGBA{40, 50, 60, 0}})
	pal.Pix[1] = 1
	rgb64 := image.NewRGBA64(image.Rect(0, 0, 1, 1))
	rgb64.Set(0, 0, color.RGBA64{0x1234, 0x5678, 0x9abc, 0xffff})

	t.Run("gray jpeg", func(t *testing.T) {
		img, err := DecodeImage(encodeJPEG(t, gray))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(img.Pix); i += 4 {
			if img.Pix[i] != img.Pix[i+1] || img.Pix[i] != img.Pix[i+2] || img.Pix[i+3] != 255 {
				t.Fatalf("pixel %d: got %v, want equal RGB, opaque", i/4, img.Pix[i:i+4])
			}
		}
	})
	t.Run("gray png", func(t *testing.T) {
		img, err := DecodeImage(encodePNG(t, gray))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range gray.Pix {
			if got := img.Pix[4*i : 4*i+4]; got[0] != v || got[1] != v || got[2] != v || got[3] != 255 {
				t.Fatalf("pixel %d: got %v, want %d", i, got, v)
			}
		}
	})
	t.Run("cmyk", func(t *testing.T) {
		img := toRGBA(cmyk)
		for i := range 6 {
			want := color.RGBAModel.Convert(cmyk.At(i%3, i/3)).(color.RGBA)
			if got := img.RGBAAt(i%3, i/3); got != want {
				t.Errorf("pixel %d: got %v, want %v", i, got, want)
			}
		}
	})
	for _, tc := range []struct {
		name string
		img  image.Image
		want []uint8
	}{
		{"nrgba drops alpha", nrgba, []uint8{200, 100, 50, 255, 1, 2, 3, 255}},
		{"paletted", pal, []uint8{10, 20, 30, 255, 40, 50, 60, 255}},
		{"rgba64 png", rgb64, []uint8{0x12, 0x56, 0x9a, 255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := DecodeImage(encodePNG(t, tc.img))
			if err != nil {
				t.Fatal(err)
			}
			if string(img.Pix) != string(tc.want) {
				t.Errorf("got %v, want %v", img.Pix, tc.want)
			}
		})
	}
}

func TestDecodeMaskFormats(t *testing.T) {
	m := synthMask(9, 7, 21)
	t.Run("palette", func(t *testing.T) {
		got, err := DecodeMask(encodeMask(t, m), 21)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Pix) != string(m.Pix) {
			t.Errorf("got %v, want %v", got.Pix, m.Pix)
		}
	})
	t.Run("gray", func(t *testing.T) {
		got, err := DecodeMask(encodePNG(t, m), 21)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Pix) != string(m.Pix) {
			t.Errorf("got %v, want %v", got.Pix, m.Pix)
		}
	})
	t.Run("4-bit palette keeps indices", func(t *testing.T) {
		p := image.NewPaletted(image.Rect(0, 0, 5, 1), VOCPalette()[:16]) // encoder writes 4 bits
		copy(p.Pix, []uint8{0, 3, 15, 7, 1})
		b := encodePNG(t, p)
		if b[24] != 4 {
			t.Fatalf("test setup: got depth %d, want 4", b[24])
		}
		got, err := DecodeMask(b, 21)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Pix) != string(p.Pix) {
			t.Errorf("got %v, want %v", got.Pix, p.Pix)
		}
	})
	t.Run("classes", func(t *testing.T) {
		_, err := DecodeMask(encodeMask(t, m), 5)
		if !errors.Is(err, ErrMaskValue) || !strings.HasPrefix(err.Error(), "data: mask values 6 (") {
			t.Errorf("got %v, want a mask value error", err)
		}
	})
}

func TestReadImageMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.jpg")
	_, err := ReadImage(p)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "data: "+p+": no such file or directory" {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("file exists")
	}
}
