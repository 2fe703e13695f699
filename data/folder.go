package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vggo/vggo/label"
)

// Folder is an image-folder classification dataset:
//
//	ROOT/train/<class>/*.{jpg,jpeg,png}
//	ROOT/val/<class>/*.{jpg,jpeg,png}
//
// The classes are the sorted folder names of ROOT/train, in every split, so that
// a class has the same index in train and val.
type Folder struct {
	root    string
	split   string
	names   []string
	samples []Sample
}

// OpenFolder lists the images of ROOT/<split>. Files with other extensions and
// hidden files are skipped. A class folder of the split that is not in ROOT/train
// is an error, and so is a split with no image.
func OpenFolder(root, split string) (*Folder, error) {
	trainDir := filepath.Join(root, "train")
	names, err := subdirs(trainDir)
	if err != nil {
		return nil, fmt.Errorf("data: image folder dataset: %w (want ROOT/train/<class>/*.jpg)", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("data: %s has no class folder (want ROOT/train/<class>/*.jpg)", trainDir)
	}
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}
	dir := filepath.Join(root, split)
	splitNames, err := subdirs(dir)
	if err != nil {
		return nil, fmt.Errorf("data: split %q: %w (want ROOT/%s/<class>/*.jpg)", split, err, split)
	}
	f := &Folder{root: root, split: split, names: names}
	for _, n := range splitNames {
		label, ok := index[n]
		if !ok {
			return nil, fmt.Errorf("data: class folder %s is not in %s: every class must have training images "+
				"(add %s or remove the folder)", filepath.Join(dir, n), trainDir, filepath.Join(trainDir, n))
		}
		ents, err := os.ReadDir(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		for _, e := range ents { // ReadDir sorts by name
			name := e.Name()
			if e.IsDir() || strings.HasPrefix(name, ".") || !isImageName(name) {
				continue
			}
			f.samples = append(f.samples, Sample{
				ID:        n + "/" + name,
				ImagePath: filepath.Join(dir, n, name),
				Label:     label,
			})
		}
	}
	if len(f.samples) == 0 {
		return nil, fmt.Errorf("data: %s holds no image (want %s/<class>/*.jpg, .jpeg or .png)", dir, dir)
	}
	return f, nil
}

func isImageName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// subdirs returns the sorted names of dir's non-hidden subfolders.
func subdirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %w", pe.Path, pe.Err)
		}
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Root returns the dataset root.
func (f *Folder) Root() string { return f.root }

// Split returns the split's folder name.
func (f *Folder) Split() string { return f.split }

// Len returns the number of images in the split.
func (f *Folder) Len() int { return len(f.samples) }

// Sample returns the i-th sample's id, path and class.
func (f *Folder) Sample(i int) Sample { return f.samples[i] }

// Task returns Classification.
func (f *Folder) Task() label.Task { return label.Classification }

// ClassNames returns the class folder names, indexed by class.
func (f *Folder) ClassNames() []string { return append([]string(nil), f.names...) }

// Load reads the i-th image.
func (f *Folder) Load(i int) (Example, error) {
	s := f.samples[i]
	img, err := ReadImage(s.ImagePath)
	if err != nil {
		var se *SampleError
		if errors.As(err, &se) {
			se.ID = s.ID
		}
		return Example{}, err
	}
	return Example{ID: s.ID, Image: img, Label: s.Label}, nil
}
