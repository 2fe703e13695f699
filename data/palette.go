package data

import (
	"image"
	"image/color"
	"image/png"
	"io"
)

// VOCColor returns the colour of palette index i in the PASCAL VOC colormap: the
// bits of i are dealt out, three at a time, to the high bits of red, green and blue
// (the devkit's bitget formula). VOCColor(0) is black, VOCColor(1) is (128,0,0),
// VOCColor(255) (ignore) is (224,224,192).
func VOCColor(i uint8) color.RGBA {
	var r, g, b uint8
	c := i
	for j := 0; j < 8; j++ {
		r |= (c & 1) << (7 - j)
		g |= (c >> 1 & 1) << (7 - j)
		b |= (c >> 2 & 1) << (7 - j)
		c >>= 3
	}
	return color.RGBA{r, g, b, 255}
}

// VOCPalette returns the 256-entry PASCAL VOC palette (a new slice each call).
func VOCPalette() color.Palette {
	p := make(color.Palette, 256)
	for i := range p {
		p[i] = VOCColor(uint8(i))
	}
	return p
}

// EncodeMask writes m as an 8-bit palette PNG with the VOC palette, the format of
// VOC's SegmentationClass: each pixel's palette index is its class (255 = ignore).
func EncodeMask(w io.Writer, m *image.Gray) error {
	p := &image.Paletted{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect, Palette: VOCPalette()}
	return png.Encode(w, p)
}
