package data

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vggo/vggo/label"
)

func makeFolders(t *testing.T, files map[string]int) string {
	root := t.TempDir()
	for p, w := range files {
		b := encodeJPEG(t, synthImage(w, 10))
		if strings.HasSuffix(p, ".png") {
			b = encodePNG(t, synthImage(w, 10))
		}
		writeFile(t, filepath.Join(root, p), b)
	}
	return root
}

func TestOpenFolder(t *testing.T) {
	root := makeFolders(t, map[string]int{
		"train/dog/b.jpg": 12, "train/dog/a.JPEG": 11, "train/cat/x.png": 13, "train/cat/notes.txt": 5,
		"train/cat/.hidden.jpg": 5, "train/eel/e.jpg": 9, "val/dog/v.jpg": 8, "val/cat/w.jpg": 7,
	})
	tr, err := OpenFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.ClassNames(); !reflect.DeepEqual(got, []string{"cat", "dog", "eel"}) {
		t.Errorf("classes: got %v", got)
	}
	var ids []string
	var labels []int
	for i := range tr.Len() {
		ids = append(ids, tr.Sample(i).ID)
		labels = append(labels, tr.Sample(i).Label)
	}
	if want := []string{"cat/x.png", "dog/a.JPEG", "dog/b.jpg", "eel/e.jpg"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids: got %v, want %v", ids, want)
	}
	if want := []int{0, 1, 1, 2}; !reflect.DeepEqual(labels, want) {
		t.Errorf("labels: got %v, want %v", labels, want)
	}
	ex, err := tr.Load(2)
	if err != nil || ex.Label != 1 || ex.Mask != nil || ex.Image.Rect.Dx() != 12 || ex.ID != "dog/b.jpg" {
		t.Errorf("Load: got %+v, %v", ex, err)
	}
	val, err := OpenFolder(root, "val")
	if err != nil {
		t.Fatal(err)
	}
	if val.Len() != 2 || val.Sample(0).Label != 0 || val.Sample(1).Label != 1 || val.Task() != label.Classification {
		t.Errorf("val: got %+v %+v", val.Sample(0), val.Sample(1))
	}
}

func TestOpenFolderErrors(t *testing.T) {
	root := makeFolders(t, map[string]int{"train/dog/a.jpg": 8, "val/dog/b.jpg": 8, "val/cow/c.jpg": 8, "test/dog/readme.md": 1})
	_, err := OpenFolder(root, "val")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "val", "cow")) || !strings.Contains(err.Error(), "not in") {
		t.Errorf("val-only class: got %v", err)
	}
	_, err = OpenFolder(root, "test")
	if err == nil || !strings.Contains(err.Error(), "holds no image") {
		t.Errorf("no image: got %v", err)
	}
	_, err = OpenFolder(root, "nope")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "nope")) {
		t.Errorf("missing split: got %v", err)
	}
	_, err = OpenFolder(t.TempDir(), "train")
	if err == nil || !strings.Contains(err.Error(), "train") {
		t.Errorf("missing train: got %v", err)
	}
	bad := makeFolders(t, map[string]int{"train/dog/a.jpg": 8})
	writeFile(t, filepath.Join(bad, "train", "dog", "z.jpg"), []byte("not a jpeg"))
	f, err := OpenFolder(bad, "train")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Load(1)
	var se *SampleError
	if !errors.As(err, &se) || se.ID != "dog/z.jpg" || !strings.Contains(err.Error(), "z.jpg") {
		t.Errorf("bad image: got %v", err)
	}
}

func TestOpenFolderSymlinks(t *testing.T) {
	root := makeFolders(t, map[string]int{"train/cat/c.jpg": 8})
	elsewhere := makeFolders(t, map[string]int{"dogs/d1.jpg": 9, "dogs/d2.png": 10, "one/o.jpg": 11})
	links := map[string]string{
		filepath.Join(root, "train", "dog"):          filepath.Join(elsewhere, "dogs"),         // a class folder
		filepath.Join(root, "train", "cat", "o.jpg"): filepath.Join(elsewhere, "one", "o.jpg"), // an image
		filepath.Join(root, "train", "cat", "x.jpg"): filepath.Join(elsewhere, "missing.jpg"),  // broken
		filepath.Join(root, "train", "cat", "d.jpg"): filepath.Join(elsewhere, "dogs"),         // a folder named like an image
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Skipf("symlinks: %v", err)
		}
	}
	f, err := OpenFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ClassNames(); !reflect.DeepEqual(got, []string{"cat", "dog"}) {
		t.Errorf("classes: got %v, want the symlinked dog too", got)
	}
	var ids []string
	for i := range f.Len() {
		ids = append(ids, f.Sample(i).ID)
	}
	if want := []string{"cat/c.jpg", "cat/o.jpg", "cat/x.jpg", "dog/d1.jpg", "dog/d2.png"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids: got %v, want %v", ids, want)
	}
	if ex, err := f.Load(1); err != nil || ex.Image.Rect.Dx() != 11 {
		t.Errorf("symlinked image: %v", err)
	}
	if ex, err := f.Load(4); err != nil || ex.Label != 1 || ex.Image.Rect.Dx() != 10 {
		t.Errorf("image in a symlinked class: %+v, %v", ex, err)
	}
	// A broken link is a bad sample, reported when read, not silently dropped.
	if _, err := f.Load(2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("broken link: got %v, want fs.ErrNotExist", err)
	}
}

func TestOpenFolderEmptyClasses(t *testing.T) {
	root := makeFolders(t, map[string]int{"train/cat/c.jpg": 8, "train/dog/notes.txt": 1, "val/cat/v.jpg": 8})
	os.MkdirAll(filepath.Join(root, "train", "eel"), 0o755)
	tr, err := OpenFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.EmptyClasses(); !reflect.DeepEqual(got, []string{"dog", "eel"}) {
		t.Errorf("train: empty classes %v, want [dog eel]", got)
	}
	if got := tr.ClassNames(); !reflect.DeepEqual(got, []string{"cat", "dog", "eel"}) {
		t.Errorf("an empty class must keep its index: classes %v", got)
	}
	val, err := OpenFolder(root, "val")
	if err != nil {
		t.Fatal(err)
	}
	if got := val.EmptyClasses(); !reflect.DeepEqual(got, []string{"dog", "eel"}) {
		t.Errorf("val: empty classes %v, want [dog eel] (absent folders)", got)
	}
	full := makeFolders(t, map[string]int{"train/cat/c.jpg": 8})
	if f, _ := OpenFolder(full, "train"); f.EmptyClasses() != nil {
		t.Errorf("no empty class: got %v", f.EmptyClasses())
	}
}

func TestOpenFolderNonUTF8Names(t *testing.T) {
	root := makeFolders(t, map[string]int{"train/cat/c.jpg": 8})
	class, file := "caf\xe9", "\xff\xfeimg.jpg" // Latin-1 names: not valid UTF-8
	dir := filepath.Join(root, "train", class)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("this file system refuses non-UTF-8 names: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), encodeJPEG(t, synthImage(9, 10)), 0o644); err != nil {
		t.Skipf("this file system refuses non-UTF-8 names: %v", err)
	}
	f, err := OpenFolder(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	names := f.ClassNames()
	s := f.Sample(0) // "caf\xe9" sorts before "cat"
	if names[0] != `caf\xe9` || s.ID != `caf\xe9/\xff\xfeimg.jpg` || s.ImagePath != filepath.Join(dir, file) {
		t.Fatalf("got classes %q, sample %+v", names, s)
	}
	if ex, err := f.Load(0); err != nil || ex.ID != s.ID || ex.Label != 0 {
		t.Errorf("Load: %+v, %v", ex, err)
	}
	// Ids and class names round-trip through JSON (config.json's exclude list, the
	// class names in checkpoint metadata and best.json), so a resumed run still
	// recognises them.
	b, err := json.Marshal(map[string]any{"exclude": []string{s.ID}, "class_names": names})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Exclude    []string `json:"exclude"`
		ClassNames []string `json:"class_names"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.ClassNames, names) || back.Exclude[0] != s.ID {
		t.Errorf("JSON changed the names: %q %q", back.ClassNames, back.Exclude)
	}
	if kept := Exclude(f, back.Exclude); kept.Len() != 1 || kept.Sample(0).ID != "cat/c.jpg" {
		t.Errorf("Exclude with the id read back kept %d samples", kept.Len())
	}
	if raw, err := UnescapeName(names[0]); err != nil || raw != class {
		t.Errorf("UnescapeName: %q, %v", raw, err)
	}
}

func TestEscapeName(t *testing.T) {
	for _, c := range []struct{ raw, escaped string }{
		{"dog", "dog"},
		{"2007_000032", "2007_000032"},
		{"café ☕", "café ☕"},
		{"caf\xe9", `caf\xe9`},
		{"\xff\xfe", `\xff\xfe`},
		{"a\\b", `a\\b`},
		{`\xff`, `\\xff`},                  // a literal backslash-x name stays apart from the byte 0xff
		{"\xe2\x82", `\xe2\x82`},           // a truncated 3-byte sequence
		{"ok\xc0\xafend", `ok\xc0\xafend`}, // an overlong encoding of '/'
		{"", ""},
	} {
		got := EscapeName(c.raw)
		if got != c.escaped || !utf8.ValidString(got) {
			t.Errorf("EscapeName(%q) = %q, want %q", c.raw, got, c.escaped)
		}
		back, err := UnescapeName(got)
		if err != nil || back != c.raw {
			t.Errorf("UnescapeName(%q) = %q, %v; want %q", got, back, err, c.raw)
		}
	}
	for _, bad := range []string{`a\`, `a\q`, `\x`, `\xg0`, `\x1`} {
		if _, err := UnescapeName(bad); err == nil {
			t.Errorf("UnescapeName(%q): no error", bad)
		}
	}
}

// Evaluating a model needs only ROOT/<split>: the classes are the model's, in its order.
func TestOpenFolderClasses(t *testing.T) {
	root := makeFolders(t, map[string]int{"val/dog/v.jpg": 8, "val/cat/w.jpg": 7})
	f, err := OpenFolderClasses(root, "val", []string{"eel", "dog", "cat"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range f.samples {
		got[s.ID] = s.Label
	}
	if want := map[string]int{"dog/v.jpg": 1, "cat/w.jpg": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	if e := f.EmptyClasses(); !reflect.DeepEqual(e, []string{"eel"}) {
		t.Errorf("empty classes %v, want [eel]", e)
	}
	if _, err := OpenFolderClasses(root, "val", []string{"dog"}); err == nil || !strings.Contains(err.Error(), "not one of the 1 classes") {
		t.Errorf("a folder outside the classes: %v", err)
	}
	if _, err := OpenFolder(root, "val"); err == nil {
		t.Error("OpenFolder without ROOT/train: no error")
	}
}
