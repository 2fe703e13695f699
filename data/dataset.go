package data

import (
	"fmt"
	"image"

	"github.com/vggo/vggo/label"
)

// Sample locates one sample on disk.
type Sample struct {
	ID        string // VOC id ("2007_000032"), or "class/file.jpg" for image folders
	ImagePath string
	MaskPath  string // segmentation only
	Label     int    // class index (classification); -1 for segmentation
}

// Example is one decoded sample.
type Example struct {
	ID    string
	Image *image.RGBA // opaque RGB, bounds starting at 0,0
	Mask  *image.Gray // class index per pixel, 255 = ignore, same size and origin; nil for classification
	Label int         // class index (classification); -1 for segmentation
}

// Dataset is a list of samples that are read from disk on demand. Load must be
// safe for concurrent use; it returns a *SampleError (or several, errors.Join-ed,
// one per bad file) when a sample is bad.
type Dataset interface {
	Len() int
	Sample(i int) Sample
	Load(i int) (Example, error)
	Task() label.Task
	ClassNames() []string
}

// Subset returns the dataset made of ds's samples at the given indices, in order.
// It panics if an index is out of range (a programmer error).
func Subset(ds Dataset, indices []int) Dataset {
	for _, i := range indices {
		if i < 0 || i >= ds.Len() {
			panic(fmt.Sprintf("data: Subset: index %d out of range [0, %d)", i, ds.Len()))
		}
	}
	return &subset{ds: ds, idx: append([]int(nil), indices...)}
}

// Exclude returns ds without the samples whose ID is in ids (for --skip-bad, with
// Report.BadIDs). IDs that ds does not hold are ignored.
func Exclude(ds Dataset, ids []string) Dataset {
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	keep := make([]int, 0, ds.Len())
	for i := range ds.Len() {
		if !drop[ds.Sample(i).ID] {
			keep = append(keep, i)
		}
	}
	return &subset{ds: ds, idx: keep}
}

type subset struct {
	ds  Dataset
	idx []int
}

func (s *subset) Len() int                    { return len(s.idx) }
func (s *subset) Sample(i int) Sample         { return s.ds.Sample(s.idx[i]) }
func (s *subset) Load(i int) (Example, error) { return s.ds.Load(s.idx[i]) }
func (s *subset) Task() label.Task            { return s.ds.Task() }
func (s *subset) ClassNames() []string        { return s.ds.ClassNames() }
