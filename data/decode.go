package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"strings"

	"golang.org/x/image/draw"

	"github.com/vggo/vggo/label"
)

// MaxPixels is the largest image or mask accepted (64 megapixels). Headers are
// checked before decoding, so a file claiming more is refused without allocating.
const MaxPixels = 64 << 20

const pngSig = "\x89PNG\r\n\x1a\n"

func isPNG(b []byte) bool  { return len(b) >= 8 && string(b[:8]) == pngSig }
func isJPEG(b []byte) bool { return len(b) >= 2 && b[0] == 0xff && b[1] == 0xd8 }

func checkSize(kind string, w, h int) error { return checkSizeMax(kind, w, h, MaxPixels) }

func checkSizeMax(kind string, w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return errorf(ErrCorrupt, "%s header claims %dx%d pixels", kind, w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) {
		return errorf(ErrTooLarge, "%s header claims %dx%d = %.1f megapixels, over the %.1f-megapixel limit (downscale the file)",
			kind, w, h, float64(w)*float64(h)/(1<<20), float64(maxPixels)/(1<<20))
	}
	return nil
}

// DecodeImage decodes a JPEG or PNG image into opaque RGB (an *image.RGBA whose
// alpha is 255 and whose bounds start at 0,0). Grayscale, CMYK, palette and
// 16-bit images are converted; alpha is dropped. A JPEG's EXIF orientation is
// applied, so a phone photo stored sideways comes out upright, as viewers show it
// (and as a mask drawn on it is). The header is checked first: more than MaxPixels
// pixels is an ErrTooLarge error.
func DecodeImage(b []byte) (*image.RGBA, error) {
	return DecodeImageMax(b, MaxPixels)
}

// DecodeImageMax is DecodeImage with another pixel limit (a server taking uploads
// sets a lower one): a header claiming more than maxPixels is an ErrTooLarge error,
// refused before anything is allocated for the pixels.
func DecodeImageMax(b []byte, maxPixels int) (*image.RGBA, error) {
	img, err := decodeImage(b, maxPixels)
	if err != nil {
		return nil, prefixed{err}
	}
	return img, nil
}

// ReadImage reads and decodes an image file (see DecodeImage). Errors are
// *SampleError naming the file.
func ReadImage(path string) (*image.RGBA, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &SampleError{Path: path, Err: fileError(err)}
	}
	img, err := decodeImage(b, MaxPixels)
	if err != nil {
		return nil, &SampleError{Path: path, Err: err}
	}
	return img, nil
}

func decodeImage(b []byte, maxPixels int) (*image.RGBA, error) {
	var (
		format string
		cfg    image.Config
		err    error
	)
	switch {
	case isJPEG(b):
		format = "JPEG"
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
	case isPNG(b):
		format = "PNG"
		if w, h, ok := pngSize(b); ok { // before DecodeConfig, which wants more than IHDR
			if err := checkSizeMax(format, w, h, maxPixels); err != nil {
				return nil, err
			}
		}
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	case len(b) == 0:
		return nil, errorf(ErrCorrupt, "empty file (want a JPEG or PNG image)")
	default:
		return nil, errorf(ErrFormat, "not a JPEG or PNG file (starts with %q); convert it to JPEG or PNG", head(b))
	}
	if err != nil {
		return nil, errorf(ErrCorrupt, "corrupt %s header: %v (re-encode or remove the file)", format, err)
	}
	if err := checkSizeMax(format, cfg.Width, cfg.Height, maxPixels); err != nil {
		return nil, err
	}
	var img image.Image
	if format == "JPEG" {
		img, err = jpeg.Decode(bytes.NewReader(b))
	} else {
		img, err = png.Decode(bytes.NewReader(b))
	}
	if err != nil {
		return nil, errorf(ErrCorrupt, "corrupt %s: %v (re-encode or remove the file)", format, err)
	}
	if format == "JPEG" {
		return orient(toRGBA(img), jpegOrientation(b)), nil
	}
	return toRGBA(img), nil
}

// pngSize reads the size in a PNG's IHDR chunk (clamped to 1<<30 per side).
func pngSize(b []byte) (w, h int, ok bool) {
	if len(b) < 24 || string(b[12:16]) != "IHDR" {
		return 0, 0, false
	}
	w = int(min(binary.BigEndian.Uint32(b[16:20]), 1<<30))
	h = int(min(binary.BigEndian.Uint32(b[20:24]), 1<<30))
	return w, h, true
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// fileError shortens an os error to "no such file" and the like: the path is
// already in the SampleError.
func fileError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return shortPathError{pe}
	}
	return err
}

// shortPathError prints only the cause of a *fs.PathError and unwraps to it.
type shortPathError struct{ pe *os.PathError }

func (e shortPathError) Error() string { return e.pe.Err.Error() }
func (e shortPathError) Unwrap() error { return e.pe }

// toRGBA converts any decoded image to opaque RGB with bounds at 0,0.
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	if m, ok := img.(*image.RGBA); ok && b.Min == (image.Point{}) && opaqueRGBA(m) {
		return m
	}
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	switch src := img.(type) {
	case *image.YCbCr, *image.Gray, *image.CMYK:
		draw.Draw(dst, dst.Rect, src, b.Min, draw.Src) // stdlib fast paths
	case *image.NRGBA:
		for y := 0; y < b.Dy(); y++ {
			s := src.Pix[y*src.Stride : y*src.Stride+4*b.Dx()]
			d := dst.Pix[y*dst.Stride : y*dst.Stride+4*b.Dx()]
			for i := 0; i < len(s); i += 4 {
				d[i], d[i+1], d[i+2], d[i+3] = s[i], s[i+1], s[i+2], 255
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for i, c := range src.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{n.R, n.G, n.B}
		}
		for y := 0; y < b.Dy(); y++ {
			s := src.Pix[y*src.Stride : y*src.Stride+b.Dx()]
			d := dst.Pix[y*dst.Stride : y*dst.Stride+4*b.Dx()]
			for x, v := range s {
				c := lut[v]
				d[4*x], d[4*x+1], d[4*x+2], d[4*x+3] = c[0], c[1], c[2], 255
			}
		}
	default: // 16-bit and other models: drop alpha, keep the colour
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				n := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				i := y*dst.Stride + 4*x
				dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = n.R, n.G, n.B, 255
			}
		}
	}
	return dst
}

func opaqueRGBA(m *image.RGBA) bool {
	for y := 0; y < m.Rect.Dy(); y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+4*m.Rect.Dx()]
		for i := 3; i < len(row); i += 4 {
			if row[i] != 255 {
				return false
			}
		}
	}
	return true
}

// maskHint is how to fix a mask in an unsupported format.
const maskHint = "want an 8-bit palette PNG (VOC SegmentationClass) or 8-bit grayscale PNG " +
	"(SegmentationClassAug) whose values are class indices"

// DecodeMask decodes a segmentation mask: an 8-bit (or lower) palette PNG gives its
// palette indices, an 8-bit grayscale PNG its values. Every value must be below
// classes or equal to 255 (ignore). RGB colour masks, 16-bit masks and JPEGs are
// refused with an ErrFormat error saying how to convert them (colours are never
// mapped back to classes: class indices are the palette indices).
func DecodeMask(b []byte, classes int) (*image.Gray, error) {
	m, _, err := decodeMask(b, classes)
	if err != nil {
		return nil, prefixed{err}
	}
	return m, nil
}

// ReadMask reads and decodes a mask file (see DecodeMask). Errors are *SampleError
// naming the file.
func ReadMask(path string, classes int) (*image.Gray, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &SampleError{Path: path, Err: fileError(err)}
	}
	m, _, err := decodeMask(b, classes)
	if err != nil {
		return nil, &SampleError{Path: path, Err: err}
	}
	return m, nil
}

// decodeMask returns the mask and its value histogram.
func decodeMask(b []byte, classes int) (*image.Gray, *[256]int64, error) {
	if classes < 1 || classes > label.Ignore {
		return nil, nil, fmt.Errorf("classes is %d, want 1..255", classes)
	}
	switch {
	case isJPEG(b):
		return nil, nil, errorf(ErrFormat, "mask is a JPEG: JPEG compression corrupts class indices; %s", maskHint)
	case len(b) == 0:
		return nil, nil, errorf(ErrCorrupt, "empty file (%s)", maskHint)
	case !isPNG(b):
		return nil, nil, errorf(ErrFormat, "mask is not a PNG file (starts with %q); %s", head(b), maskHint)
	case len(b) < 33 || string(b[12:16]) != "IHDR":
		return nil, nil, errorf(ErrCorrupt, "corrupt PNG: truncated or missing IHDR header (%s)", maskHint)
	}
	w, h, _ := pngSize(b)
	depth, ctype := b[24], b[25]
	if err := checkSize("PNG", w, h); err != nil {
		return nil, nil, err
	}
	switch {
	case ctype == 3: // palette, 1/2/4/8 bits: the decoder keeps indices
	case ctype == 0 && depth == 8:
	case ctype == 0 && depth == 16:
		return nil, nil, errorf(ErrFormat, "mask is a 16-bit grayscale PNG; %s: convert with e.g. "+
			"Image.fromarray(numpy.array(Image.open(f)).astype(numpy.uint8)).save(f) in Python, after checking every value is < 256", maskHint)
	case ctype == 0:
		return nil, nil, errorf(ErrFormat, "mask is a %d-bit grayscale PNG; %s (re-save it with 8 bits per pixel)", depth, maskHint)
	case ctype == 2 || ctype == 6:
		return nil, nil, errorf(ErrFormat, "mask is an RGB colour PNG (%d-bit); %s: class indices are never recovered "+
			"from colours, so convert it by mapping each VOC colour to its palette index (data.VOCPalette) and save "+
			"it as a palette or grayscale PNG", depth, maskHint)
	default:
		return nil, nil, errorf(ErrFormat, "mask is a PNG of colour type %d, depth %d; %s", ctype, depth, maskHint)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil, errorf(ErrCorrupt, "corrupt PNG: %v (re-encode or remove the file)", err)
	}
	var m *image.Gray
	switch src := img.(type) {
	case *image.Paletted:
		m = &image.Gray{Pix: src.Pix, Stride: src.Stride, Rect: src.Rect}
	case *image.Gray:
		m = src
	case *image.NRGBA: // 8-bit grayscale with a tRNS chunk: R holds the value
		m = image.NewGray(src.Rect)
		for i := range m.Pix {
			m.Pix[i] = src.Pix[4*i]
		}
	default:
		return nil, nil, errorf(ErrFormat, "mask decodes to %T; %s", img, maskHint)
	}
	hist := histogram(m)
	if err := checkValues(hist, classes); err != nil {
		return nil, nil, err
	}
	return m, hist, nil
}

func checkValues(hist *[256]int64, classes int) error {
	var bad []string
	for v := classes; v < label.Ignore; v++ {
		if hist[v] > 0 {
			px := "pixels"
			if hist[v] == 1 {
				px = "pixel"
			}
			bad = append(bad, fmt.Sprintf("%d (%d %s)", v, hist[v], px))
		}
	}
	if bad == nil {
		return nil
	}
	s := "value"
	if len(bad) > 1 {
		s = "values"
	}
	list := bad
	if len(list) > 5 {
		list = append(list[:5:5], fmt.Sprintf("and %d more", len(bad)-5))
	}
	return errorf(ErrMaskValue, "mask %s %s: want class indices < %d or 255 (ignore) (set the class count, or fix the mask)",
		s, strings.Join(list, ", "), classes)
}
