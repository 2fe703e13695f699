package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vggo/vggo/label"
)

// VOCOptions configures OpenVOC. The zero value reads VOC2012 as distributed.
type VOCOptions struct {
	// MaskDir is the mask folder, relative to the VOC root unless absolute:
	// "SegmentationClass" (default) or "SegmentationClassAug" (SBD, 10,582 masks).
	MaskDir string
	// Classes is the number of classes (default 21); mask values must be below it or 255.
	Classes int
	// ClassNames names the classes (default: the VOC names, then "classN").
	ClassNames []string
}

// VOC is a PASCAL VOC-style segmentation dataset:
//
//	ROOT/JPEGImages/<id>.jpg
//	ROOT/<MaskDir>/<id>.png
//	ROOT/ImageSets/Segmentation/<split>.txt
type VOC struct {
	root    string
	split   string
	classes int
	names   []string
	samples []Sample
}

// OpenVOC lists the samples of a split; files are read later, by Load. root may be
// the VOC2012 folder itself, VOCdevkit, or the folder holding VOCdevkit. split is
// a name ("train", "val", "trainval", "train_aug") looked up in
// ImageSets/Segmentation, or the path of a split file (if it ends in ".txt" and
// exists). See ParseSplit for the split file format.
func OpenVOC(root, split string, opts VOCOptions) (*VOC, error) {
	if opts.MaskDir == "" {
		opts.MaskDir = "SegmentationClass"
	}
	if opts.Classes == 0 {
		opts.Classes = len(label.VOCClasses())
	}
	if opts.Classes < 1 || opts.Classes > label.Ignore {
		return nil, fmt.Errorf("data: %d classes: want 1..255 (255 is the ignore label)", opts.Classes)
	}
	names, err := classNames(opts.Classes, opts.ClassNames)
	if err != nil {
		return nil, err
	}
	dir, err := resolveVOCRoot(root)
	if err != nil {
		return nil, err
	}
	maskDir := opts.MaskDir
	if !filepath.IsAbs(maskDir) {
		maskDir = filepath.Join(dir, maskDir)
	}
	if !isDir(maskDir) {
		return nil, fmt.Errorf("data: mask folder %s not found (the mask folder is a folder of %s: SegmentationClass, "+
			"or SegmentationClassAug after installing the SBD augmented masks)", maskDir, dir)
	}
	splitPath := filepath.Join(dir, "ImageSets", "Segmentation", split+".txt")
	if strings.HasSuffix(split, ".txt") {
		if _, err := os.Stat(split); err == nil {
			splitPath = split
		}
	}
	f, err := os.Open(splitPath)
	if err != nil {
		hint := " (want ROOT/ImageSets/Segmentation/<split>.txt, one id per line)"
		if avail := listSplits(filepath.Dir(splitPath)); avail != "" {
			hint = " (available splits: " + avail + ")"
		}
		return nil, fmt.Errorf("data: split %q: %w%s", split, err, hint)
	}
	defer f.Close()
	ids, err := ParseSplit(f)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", splitPath, err)
	}
	v := &VOC{root: dir, split: split, classes: opts.Classes, names: names, samples: make([]Sample, len(ids))}
	for i, id := range ids {
		v.samples[i] = Sample{
			ID:        EscapeName(id),
			ImagePath: filepath.Join(dir, "JPEGImages", id+".jpg"),
			MaskPath:  filepath.Join(maskDir, id+".png"),
			Label:     -1,
		}
	}
	return v, nil
}

func classNames(n int, given []string) ([]string, error) {
	if given != nil {
		if len(given) != n {
			return nil, fmt.Errorf("data: %d class names for %d classes", len(given), n)
		}
		return append([]string(nil), given...), nil
	}
	return label.Names(n, label.VOCClasses()), nil
}

// resolveVOCRoot finds the folder holding JPEGImages: root, root/VOC2012,
// root/VOCdevkit/VOC2012, or another single VOC20xx folder in those places.
func resolveVOCRoot(root string) (string, error) {
	if _, err := os.Stat(root); err != nil {
		return "", fmt.Errorf("data: dataset root: %w (point it at VOC2012, VOCdevkit or the folder holding VOCdevkit)", err)
	}
	cands := []string{root, filepath.Join(root, "VOC2012"), filepath.Join(root, "VOCdevkit", "VOC2012")}
	for _, pat := range []string{filepath.Join(root, "VOC20*"), filepath.Join(root, "VOCdevkit", "VOC20*")} {
		m, _ := filepath.Glob(pat)
		sort.Sort(sort.Reverse(sort.StringSlice(m))) // newest year first
		cands = append(cands, m...)
	}
	for _, c := range cands {
		if isDir(filepath.Join(c, "JPEGImages")) {
			return c, nil
		}
	}
	return "", fmt.Errorf("data: no VOC dataset under %s: found none of JPEGImages, VOC2012/JPEGImages, "+
		"VOCdevkit/VOC2012/JPEGImages in it (point the dataset root at VOC2012, VOCdevkit or the folder holding VOCdevkit)", root)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func listSplits(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	var names []string
	for _, p := range m {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".txt"))
	}
	return strings.Join(names, ", ")
}

// ParseSplit reads a split file: one sample id per line. It tolerates CRLF line
// ends, a UTF-8 byte order mark, surrounding spaces and blank lines. Only a line's
// first field counts, and a path there is reduced to its base name without image
// extension, so lists like "/JPEGImages/x.jpg /SegmentationClassAug/x.png" (the
// usual train_aug.txt) give "x". A list with no id is an error.
func ParseSplit(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	var ids []string
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			continue
		}
		id := fields[0]
		if i := strings.LastIndexAny(id, `/\`); i >= 0 {
			id = id[i+1:]
			for _, ext := range []string{".jpg", ".jpeg", ".png"} {
				if len(id) > len(ext) && strings.EqualFold(id[len(id)-len(ext):], ext) {
					id = id[:len(id)-len(ext)]
					break
				}
			}
		}
		if id == "" || id == "." || id == ".." || strings.ContainsRune(id, 0) {
			return nil, fmt.Errorf("line %d: %q is not a sample id (want one id per line, e.g. 2007_000032)", n, fields[0])
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d is longer than 64 KiB: not a split file (want one id per line)", len(ids)+1)
		}
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("the split lists no ids (want one id per line, e.g. 2007_000032)")
	}
	return ids, nil
}

// Root returns the resolved VOC folder (the one holding JPEGImages).
func (v *VOC) Root() string { return v.root }

// Split returns the split's name as given to OpenVOC.
func (v *VOC) Split() string { return v.split }

// Len returns the number of samples in the split.
func (v *VOC) Len() int { return len(v.samples) }

// Sample returns the i-th sample's id and paths.
func (v *VOC) Sample(i int) Sample { return v.samples[i] }

// Task returns Segmentation.
func (v *VOC) Task() label.Task { return label.Segmentation }

// ClassNames returns the class names, indexed by class.
func (v *VOC) ClassNames() []string { return append([]string(nil), v.names...) }

// Load reads and checks the i-th image and mask. Problems with both files are
// reported together (errors.Join of *SampleError).
func (v *VOC) Load(i int) (Example, error) {
	s := v.samples[i]
	img, ierr := ReadImage(s.ImagePath)
	mask, merr := ReadMask(s.MaskPath, v.classes)
	if ierr != nil || merr != nil {
		var errs []error
		for _, err := range []error{ierr, merr} {
			var se *SampleError
			if errors.As(err, &se) {
				se.ID = s.ID
				errs = append(errs, se)
			}
		}
		if len(errs) == 1 {
			return Example{}, errs[0]
		}
		return Example{}, errors.Join(errs...)
	}
	if img.Rect.Size() != mask.Rect.Size() {
		return Example{}, &SampleError{ID: s.ID, Path: s.MaskPath, Err: errorf(ErrSizeMismatch,
			"mask is %dx%d but image %s is %dx%d (WxH); an image and its mask must have the same size",
			mask.Rect.Dx(), mask.Rect.Dy(), s.ImagePath, img.Rect.Dx(), img.Rect.Dy())}
	}
	return Example{ID: s.ID, Image: img, Mask: mask, Label: -1}, nil
}
