package data

import (
	"encoding/binary"
	"image"
)

// jpegOrientation returns the EXIF orientation tag (1..8) of a JPEG file, or 1 when the
// file has none or it cannot be read. Phone cameras store the sensor's pixels and record
// in this tag how to turn them upright.
//
// Only what the tag needs is parsed: the JPEG segments before the first scan, the APP1
// segment starting "Exif\0\0", the TIFF header and the entries of its first IFD.
func jpegOrientation(b []byte) int {
	if !isJPEG(b) {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return 1
		}
		marker := b[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7): // no length
			i += 2
			continue
		case marker == 0xda || marker == 0xd9: // start of scan, end of image: no EXIF before
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[i+2 : i+4]))
		if n < 2 || i+2+n > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o != 0 {
				return o
			}
		}
		i += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from the first IFD of a TIFF structure; 0 if absent.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:4]) != 42 {
		return 0
	}
	off := int(bo.Uint32(t[4:8]))
	if off < 8 || off+2 > len(t) {
		return 0
	}
	count := int(bo.Uint16(t[off : off+2]))
	for k := 0; k < count; k++ {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:e+2]) != 0x0112 {
			continue
		}
		if typ := bo.Uint16(t[e+2 : e+4]); typ != 3 { // SHORT
			return 0
		}
		if v := int(bo.Uint16(t[e+8 : e+10])); v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}

// orient returns img turned upright as EXIF orientation o says (1: as stored; 2: mirror
// left-right; 3: rotate 180; 4: mirror top-bottom; 5: transpose; 6: rotate 90 clockwise;
// 7: transverse; 8: rotate 90 counter-clockwise). img's bounds start at 0,0.
func orient(img *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return img
	}
	iw, ih := img.Rect.Dx(), img.Rect.Dy()
	ow, oh := iw, ih
	if o >= 5 {
		ow, oh = ih, iw
	}
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := 0; y < oh; y++ {
		d := out.Pix[y*out.Stride : y*out.Stride+4*ow]
		for x := 0; x < ow; x++ {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = iw-1-x, y
			case 3:
				sx, sy = iw-1-x, ih-1-y
			case 4:
				sx, sy = x, ih-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, ih-1-x
			case 7:
				sx, sy = iw-1-y, ih-1-x
			case 8:
				sx, sy = iw-1-y, x
			}
			s := img.Pix[sy*img.Stride+4*sx : sy*img.Stride+4*sx+4]
			copy(d[4*x:4*x+4], s)
		}
	}
	return out
}
