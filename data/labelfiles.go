package data

import (
	"bufio"
	"fmt"
	"image/color"
	"os"
	"strconv"
	"strings"
)

// labelFiles are the names of the class-name files a dataset root may hold, in the
// order they are looked for.
var labelFiles = []string{"classes.txt", "labels.txt"}

// LabelFiles returns the class-name file names looked for beside a dataset.
func LabelFiles() []string { return append([]string(nil), labelFiles...) }

// ReadClassNames reads a class-name file: one name per line, in label order; blank
// lines and lines starting with '#' are skipped, surrounding spaces trimmed.
func ReadClassNames(path string) ([]string, error) {
	var names []string
	err := readLines(path, func(line string, n int) error {
		names = append(names, line)
		return nil
	})
	if err == nil && len(names) == 0 {
		err = fmt.Errorf("data: %s holds no class name", path)
	}
	return names, err
}

// ReadPalette reads a colour file: one colour per line, in label order, as "#rrggbb" or
// "R G B" (0-255); blank lines and '#'-comments (a '#' followed by a space) are skipped.
func ReadPalette(path string) ([]color.RGBA, error) {
	var cols []color.RGBA
	err := readLines(path, func(line string, n int) error {
		c, err := ParseColor(line)
		if err != nil {
			return fmt.Errorf("data: %s line %d: %w", path, n, err)
		}
		cols = append(cols, c)
		return nil
	})
	if err == nil && len(cols) == 0 {
		err = fmt.Errorf("data: %s holds no colour", path)
	}
	return cols, err
}

// ParseColor reads "#rrggbb" or "R G B".
func ParseColor(s string) (color.RGBA, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "#") {
		v, err := strconv.ParseUint(s[1:], 16, 32)
		if err != nil || len(s) != 7 {
			return color.RGBA{}, fmt.Errorf("colour %q: want #rrggbb or R G B", s)
		}
		return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}, nil
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	if len(f) != 3 {
		return color.RGBA{}, fmt.Errorf("colour %q: want #rrggbb or R G B", s)
	}
	var c [3]uint8
	for i, x := range f {
		v, err := strconv.ParseUint(x, 10, 8)
		if err != nil {
			return color.RGBA{}, fmt.Errorf("colour %q: %q is not a number in 0..255", s, x)
		}
		c[i] = uint8(v)
	}
	return color.RGBA{c[0], c[1], c[2], 255}, nil
}

// HexColor is the "#rrggbb" form of c.
func HexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// MaskPalette is the palette of mask PNGs: cols for the first labels, then the VOC
// colormap (label 255, ignore, stays VOC's).
func MaskPalette(cols []color.RGBA) color.Palette {
	p := VOCPalette()
	for i, c := range cols {
		if i < 255 {
			p[i] = c
		}
	}
	return p
}

func readLines(path string, fn func(line string, n int) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' && (len(line) == 1 || line[1] == ' ') {
			continue
		}
		if err := fn(line, n); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("data: read %s: %w", path, err)
	}
	return nil
}
