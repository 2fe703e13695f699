package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/losses"
)

// Flag values that fill configuration fields which are not plain numbers or strings.

// hwFlag is an HxW size.
type hwFlag struct{ h, w *int }

func (f hwFlag) String() string {
	if f.h == nil {
		return ""
	}
	return fmt.Sprintf("%dx%d", *f.h, *f.w)
}

func (f hwFlag) Set(s string) (err error) {
	*f.h, *f.w, err = parseHW(s)
	return err
}

// dropoutFlag sets a model's dropout rate; 0 disables dropout (a rate of 0 in
// graphs.Config means the default).
type dropoutFlag struct{ c *graphs.Config }

func (f dropoutFlag) String() string {
	if f.c == nil || f.c.Dropout == 0 {
		return ""
	}
	return strconv.FormatFloat(f.c.Dropout, 'g', -1, 64)
}

func (f dropoutFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	f.c.Dropout, f.c.NoDrop = v, v == 0
	return nil
}

// lossKindFlag is a losses.Kind.
type lossKindFlag struct{ k *losses.Kind }

func (f lossKindFlag) String() string {
	if f.k == nil {
		return ""
	}
	return string(*f.k)
}

func (f lossKindFlag) Set(s string) error {
	for _, k := range losses.Kinds() {
		if string(k) == s {
			*f.k = k
			return nil
		}
	}
	return fmt.Errorf("unknown loss %q (valid: ce, dice, ce+dice)", s)
}

// floatsFlag is a comma-separated list of numbers.
type floatsFlag struct{ v *[]float32 }

func (f floatsFlag) String() string {
	if f.v == nil {
		return ""
	}
	var s []string
	for _, x := range *f.v {
		s = append(s, strconv.FormatFloat(float64(x), 'g', -1, 32))
	}
	return strings.Join(s, ",")
}

func (f floatsFlag) Set(s string) error {
	*f.v = nil
	for _, part := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(part), 32)
		if err != nil {
			return fmt.Errorf("%q is not a number", part)
		}
		*f.v = append(*f.v, float32(x))
	}
	return nil
}
