package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// a class has the same index in train and val. Symbolic links to folders and to
// images are followed.
//
// Sample ids are "<class>/<file>" and class names are the folder names, both passed
// through EscapeName, so that a name that is not valid UTF-8 keeps its identity in
// JSON; sample paths keep the names' raw bytes.
type Folder struct {
	root    string
	split   string
	names   []string // raw folder names
	samples []Sample
	empty   []string // escaped names of the classes with no image in this split
}

// folderClasses returns the raw class folder names: classes (escaped names) unescaped,
// or the sorted folders of trainDir.
func folderClasses(trainDir string, classes []string) ([]string, error) {
	if classes != nil {
		names := make([]string, len(classes))
		for i, c := range classes {
			n, err := UnescapeName(c)
			if err != nil {
				return nil, fmt.Errorf("data: class name %q: %w", c, err)
			}
			names[i] = n
		}
		return names, nil
	}
	names, err := subdirs(trainDir)
	if err != nil {
		return nil, fmt.Errorf("data: image folder dataset: %w (want ROOT/train/<class>/*.jpg)", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("data: %s has no class folder (want ROOT/train/<class>/*.jpg)", trainDir)
	}
	return names, nil
}

// OpenFolder lists the images of ROOT/<split>. Files with other extensions and
// hidden files are skipped. A class folder of the split that is not in ROOT/train
// is an error, and so is a split with no image. A class with no image in the split
// is not an error (its index stays reserved); EmptyClasses lists such classes.
func OpenFolder(root, split string) (*Folder, error) { return OpenFolderClasses(root, split, nil) }

// OpenFolderClasses is OpenFolder with the class list given (the names a model was
// trained with, as ClassNames returns them) instead of read from ROOT/train: evaluating
// a model needs only ROOT/<split>. A class folder that is not in the list is an error.
func OpenFolderClasses(root, split string, classes []string) (*Folder, error) {
	trainDir := filepath.Join(root, "train")
	names, err := folderClasses(trainDir, classes)
	if err != nil {
		return nil, err
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
	count := make([]int, len(names))
	for _, n := range splitNames {
		label, ok := index[n]
		if !ok && classes != nil {
			return nil, fmt.Errorf("data: class folder %s is not one of the %d classes given (%s)", filepath.Join(dir, n), len(classes), strings.Join(classes, ", "))
		}
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
			path := filepath.Join(dir, n, name)
			if strings.HasPrefix(name, ".") || !isImageName(name) || isFolder(e, path) {
				continue
			}
			f.samples = append(f.samples, Sample{
				ID:        EscapeName(n) + "/" + EscapeName(name),
				ImagePath: path,
				Label:     label,
			})
			count[label]++
		}
	}
	for i, c := range count {
		if c == 0 {
			f.empty = append(f.empty, EscapeName(names[i]))
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

// isFolder reports whether the entry at path is a folder, following a symbolic link. A
// broken link is not a folder (as a file, it is then reported when it is read).
func isFolder(e os.DirEntry, path string) bool {
	if e.Type()&os.ModeSymlink == 0 {
		return e.IsDir()
	}
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// subdirs returns the sorted names of dir's non-hidden subfolders, symbolic links to
// folders included.
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
		if !strings.HasPrefix(e.Name(), ".") && isFolder(e, filepath.Join(dir, e.Name())) {
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

// ClassNames returns the class folder names (escaped by EscapeName), indexed by class.
func (f *Folder) ClassNames() []string {
	out := make([]string, len(f.names))
	for i, n := range f.names {
		out[i] = EscapeName(n)
	}
	return out
}

// EmptyClasses returns the names (as ClassNames gives them) of the classes that have
// no image in this split, in class order: their folder is empty, holds no image, or
// is absent from the split. The library does not print; a trainer should warn, e.g.
// "warning: class eel has no image in ROOT/train: the model never learns it".
func (f *Folder) EmptyClasses() []string { return slices.Clone(f.empty) }

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
