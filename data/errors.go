package data

import (
	"errors"
	"fmt"
)

// Kinds of sample problems, for errors.Is. A missing file is reported with the
// *fs.PathError from the os package, so errors.Is(err, fs.ErrNotExist) holds.
var (
	// ErrFormat: the file is not in a format this package reads (a GIF image,
	// an RGB or 16-bit mask, a JPEG mask, ...).
	ErrFormat = errors.New("unsupported format")
	// ErrCorrupt: the file claims a supported format but does not decode.
	ErrCorrupt = errors.New("corrupt file")
	// ErrTooLarge: the header claims more than MaxPixels pixels.
	ErrTooLarge = errors.New("image too large")
	// ErrMaskValue: a mask pixel is neither a class index below the class count nor 255.
	ErrMaskValue = errors.New("mask value out of range")
	// ErrSizeMismatch: an image and its mask have different sizes.
	ErrSizeMismatch = errors.New("image and mask sizes differ")
)

// SampleError reports a problem with one file of one sample.
// Error() reads "data: PATH: PROBLEM (FIX)".
type SampleError struct {
	ID   string // sample id (VOC id, or class/file for image folders)
	Path string // the file at fault
	Err  error  // the problem; errors.Is matches the kinds above or fs.ErrNotExist
}

func (e *SampleError) Error() string { return "data: " + e.Path + ": " + e.Err.Error() }
func (e *SampleError) Unwrap() error { return e.Err }

// kindError is a problem message that matches one of the kinds above.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// prefixed adds the package prefix to an error that names no file.
type prefixed struct{ err error }

func (e prefixed) Error() string { return "data: " + e.err.Error() }
func (e prefixed) Unwrap() error { return e.err }
