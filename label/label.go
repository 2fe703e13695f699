// Package label is the vocabulary that vggo's packages share about labels: what kind
// they are (Task), the label that marks ignored pixels, and class names. It imports
// nothing of vggo, so that data, losses, metrics and graphs can all use it.
package label

import "fmt"

// Task says what a model predicts and what a dataset's labels are.
type Task int

const (
	// Classification: one class index per image.
	Classification Task = iota
	// Segmentation: one class index per pixel (a mask), Ignore where not scored.
	Segmentation
)

func (t Task) String() string {
	switch t {
	case Classification:
		return "classification"
	case Segmentation:
		return "segmentation"
	}
	return fmt.Sprintf("Task(%d)", int(t))
}

// Ignore is the label of pixels that count for nothing in losses and metrics: PASCAL
// VOC's object boundaries and "difficult" regions, and padding. Segmentation class
// indices are therefore below it.
const Ignore = 255

// NoIgnore, given as a loss's or a confusion matrix's ignore index, makes every label
// count (no class index is negative).
const NoIgnore = -1

// VOCClasses returns the 21 PASCAL VOC segmentation classes, indexed by class, in a new
// slice on each call.
func VOCClasses() []string {
	return []string{
		"background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus",
		"car", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
		"person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
	}
}

// Names returns a name for each of n classes, in a new slice: given[i] where given has
// one, "class<i>" beyond. With no names given, 21 classes are named VOCClasses.
func Names(n int, given []string) []string {
	if len(given) == 0 && n == 21 {
		return VOCClasses()
	}
	out := make([]string, max(n, 0))
	for i := range out {
		if i < len(given) {
			out[i] = given[i]
		} else {
			out[i] = fmt.Sprintf("class%d", i)
		}
	}
	return out
}
