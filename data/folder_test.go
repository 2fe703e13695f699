package data

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

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
