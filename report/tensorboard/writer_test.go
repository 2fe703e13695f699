package tensorboard

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// start is the time the test writers are created at: 1.25 s past a whole
// second, exact in a float64.
var start = time.Unix(1_700_000_000, 250_000_000)

func TestWriterRoundTrip(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(1_700_000_100+s, 500_000_000) }
	writes := []struct {
		step     int64
		wall     time.Time
		wantWall float64 // wall_time: seconds since the Unix epoch
		values   []Value // one value: written with Scalar
	}{
		{0, at(0), 1_700_000_100.5, []Value{{"train/loss", 2.5}}},
		{1, at(1), 1_700_000_101.5, []Value{{"train/lr", 0.01}}}, // 0.01 is not a float32: rounds
		{10, at(2), 1_700_000_102.5, []Value{{"val/miou", 0.58}, {"val/pixel_acc", 0.9}, {"val/loss", 0.75}}},
		{10, at(2), 1_700_000_102.5, []Value{ // the per-class IoU, in class order
			{"val/iou/background", 0.9}, {"val/iou/aeroplane", 0}, {"val/iou/bicycle", 0.1},
		}},
		{1 << 40, at(3), 1_700_000_103.5, []Value{{"big/step", -1}}},
		{-3, at(4), 1_700_000_104.5, []Value{{"negative/step", 1}}},
		{11, at(5), 1_700_000_105.5, []Value{{"inf", math.Inf(1)}, {"-inf", math.Inf(-1)}, {"beyond float32", 1e39}}},
		{12, time.Unix(1_700_000_200, 0), 1_700_000_200, []Value{{"ünïcode/é", 3}, {strings.Repeat("t", 200), 4}}},
	}

	w, err := newWriter(t.TempDir(), start, "host")
	if err != nil {
		t.Fatal(err)
	}
	for _, wr := range writes {
		if len(wr.values) == 1 {
			err = w.Scalar(wr.values[0].Tag, wr.step, wr.values[0].Value, wr.wall)
		} else {
			err = w.Scalars(wr.step, wr.wall, wr.values...)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	events, err := readEvents(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1+len(writes) {
		t.Fatalf("got %d events, want %d", len(events), 1+len(writes))
	}
	if got, want := events[0], (gotEvent{wall: 1_700_000_000.25, fileVersion: "brain.Event:2"}); !equalEvents(got, want) {
		t.Errorf("first event: got %+v, want %+v", got, want)
	}
	for i, wr := range writes {
		want := gotEvent{
			wall:       wr.wantWall,
			step:       wr.step,
			hasSummary: true,
		}
		for _, v := range wr.values {
			want.values = append(want.values, gotValue{v.Tag, float32(v.Value)})
		}
		if got := events[1+i]; !equalEvents(got, want) {
			t.Errorf("event %d: got %+v, want %+v", 1+i, got, want)
		}
	}
	if got := events[7].values; !math.IsInf(float64(got[0].simple), 1) || !math.IsInf(float64(got[1].simple), -1) ||
		!math.IsInf(float64(got[2].simple), 1) {
		t.Errorf("Inf, -Inf, 1e39 as float32: got %+v, want +Inf, -Inf, +Inf", got)
	}
}

// equalEvents compares Events with NaN equal to NaN.
func equalEvents(a, b gotEvent) bool {
	return a.wall == b.wall && a.step == b.step && a.fileVersion == b.fileVersion &&
		a.hasSummary == b.hasSummary &&
		slices.EqualFunc(a.values, b.values, func(x, y gotValue) bool {
			return x.tag == y.tag && (x.simple == y.simple || x.simple != x.simple && y.simple != y.simple)
		})
}

func TestScalarNaN(t *testing.T) {
	w, err := newWriter(t.TempDir(), start, "host")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Scalar("loss", 1, math.NaN(), start); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := readEvents(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := events[1].values[0].simple; !math.IsNaN(float64(got)) {
		t.Errorf("got %v, want NaN", got)
	}
}

func TestWriterZeroWallIsNow(t *testing.T) {
	w, err := NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := w.Scalar("loss", 1, 1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := readEvents(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := float64(before.UnixMicro())/1e6-1e-3, float64(after.UnixMicro())/1e6+1e-3
	if got := events[1].wall; got < lo || got > hi {
		t.Errorf("wall_time %f, want within [%f, %f]", got, lo, hi)
	}
}

func TestNewWriterName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	tests := []struct {
		name string
		new  func(dir string) (*Writer, error)
		want string // regexp of the base name
	}{
		{"NewWriter", NewWriter, `^events\.out\.tfevents\.\d{10}\.` + regexp.QuoteMeta(host) + `$`},
		{"fixed time", func(dir string) (*Writer, error) { return newWriter(dir, start, "vm") }, `^events\.out\.tfevents\.1700000000\.vm$`},
		{"early time", func(dir string) (*Writer, error) { return newWriter(dir, time.Unix(42, 0), "vm") }, `^events\.out\.tfevents\.0000000042\.vm$`},
		{"host with a slash", func(dir string) (*Writer, error) { return newWriter(dir, start, "a/b") }, `^events\.out\.tfevents\.1700000000\.a_b$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "tb") // created by the writer
			w, err := tt.new(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if got := filepath.Dir(w.Path()); got != dir {
				t.Errorf("file in %s, want %s", got, dir)
			}
			if got := filepath.Base(w.Path()); !regexp.MustCompile(tt.want).MatchString(got) {
				t.Errorf("file name %q, want it to match %s", got, tt.want)
			}
			// The file_version record is on disk before the first Flush.
			events, err := readEvents(w.Path())
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 || events[0].fileVersion != "brain.Event:2" {
				t.Errorf("got events %+v, want one with file_version brain.Event:2", events)
			}
		})
	}
}

// TestNewWriterKeepsEarlierFiles resumes three times into one directory, all
// in the same second: each writer gets a file of its own, TensorBoard's
// (sorted) order is the order they were made in, and earlier files are left
// as they were, including one that a crash left torn.
func TestNewWriterKeepsEarlierFiles(t *testing.T) {
	dir := t.TempDir()
	torn := filepath.Join(dir, "events.out.tfevents.1699999999.vm")
	tornData := appendRecord(nil, []byte("whole"))
	tornData = append(tornData, appendRecord(nil, []byte("torn"))[:7]...)
	if err := os.WriteFile(torn, tornData, 0o644); err != nil {
		t.Fatal(err)
	}
	var paths []string
	contents := map[string][]byte{torn: tornData}
	for run := range 3 {
		w, err := newWriter(dir, start, "vm")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Scalar("run", int64(run), float64(run), start); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, w.Path())
	}
	want := []string{
		torn,
		filepath.Join(dir, "events.out.tfevents.1700000000.vm"),
		filepath.Join(dir, "events.out.tfevents.1700000000.vm.1"),
		filepath.Join(dir, "events.out.tfevents.1700000000.vm.2"),
	}
	if !slices.Equal(paths, want[1:]) {
		t.Errorf("files %q, want %q", paths, want[1:])
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sorted []string
	for _, e := range entries {
		sorted = append(sorted, filepath.Join(dir, e.Name()))
	}
	if !slices.Equal(sorted, want) {
		t.Errorf("directory in name order %q, want %q", sorted, want)
	}
	for run, p := range paths {
		events, err := readEvents(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 2 || events[1].step != int64(run) {
			t.Errorf("%s: got %+v, want the version event and run %d's scalar", p, events, run)
		}
		contents[p], _ = os.ReadFile(p)
	}
	// A fourth writer changes none of them.
	w, err := newWriter(dir, start, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range contents {
		if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Errorf("%s changed", p)
		}
	}
}

func TestNewWriterErrors(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want error
	}{
		{"dir is a file", file, syscall.ENOTDIR},
		{"dir under a file", filepath.Join(file, "tb"), syscall.ENOTDIR},
	}
	full := t.TempDir() // every name a writer started at start may take is taken
	for i := range maxSuffix + 1 {
		name := "events.out.tfevents.1700000000.vm"
		if i > 0 {
			name += fmt.Sprint(".", i)
		}
		if err := os.WriteFile(filepath.Join(full, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("no free name", func(t *testing.T) {
		w, err := newWriter(full, start, "vm")
		if w != nil || !errors.Is(err, fs.ErrExist) || !strings.HasPrefix(err.Error(), "tensorboard: ") {
			t.Errorf("got %v, %v; want nil and an error: %v", w, err, fs.ErrExist)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(tt.dir)
			if w != nil || !errors.Is(err, tt.want) || !strings.HasPrefix(err.Error(), "tensorboard: ") ||
				!strings.Contains(err.Error(), file) {
				t.Errorf("got %v, %v; want nil and an error naming %s: %v", w, err, file, tt.want)
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	newW := func(t *testing.T) *Writer {
		w, err := newWriter(t.TempDir(), start, "vm")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}
	tests := []struct {
		name string
		do   func(t *testing.T, w *Writer) error
		want string // in the error; "" for none
		is   error
	}{
		{"empty tag", func(t *testing.T, w *Writer) error { return w.Scalar("", 1, 1, start) },
			"tensorboard: value 0 of 1 at step 1 has an empty tag", nil},
		{"empty tag among others", func(t *testing.T, w *Writer) error {
			return w.Scalars(7, start, Value{"a", 1}, Value{"", 2})
		}, "tensorboard: value 1 of 2 at step 7 has an empty tag", nil},
		{"Scalar after Close", func(t *testing.T, w *Writer) error {
			w.Close()
			return w.Scalar("a", 1, 1, start)
		}, "tensorboard: writer is closed", ErrClosed},
		{"Scalars after Close", func(t *testing.T, w *Writer) error {
			w.Close()
			return w.Scalars(1, start, Value{"a", 1})
		}, "tensorboard: writer is closed", ErrClosed},
		{"Flush after Close", func(t *testing.T, w *Writer) error {
			w.Close()
			return w.Flush()
		}, "tensorboard: writer is closed", ErrClosed},
		{"Close after Close", func(t *testing.T, w *Writer) error {
			w.Close()
			return w.Close()
		}, "", nil},
		{"no values", func(t *testing.T, w *Writer) error { return w.Scalars(1, start) }, "", nil},
		{"write error is kept", func(t *testing.T, w *Writer) error {
			w.f.Close() // the file goes away under the writer
			if err := w.Scalar("a", 1, 1, start); err != nil {
				t.Errorf("Scalar into the buffer: %v", err)
			}
			err := w.Flush()
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("Flush: got %v, want %v", err, os.ErrClosed)
			}
			if err2 := w.Scalar("b", 2, 2, start); err2 != err {
				t.Errorf("Scalar after the failed Flush: got %v, want %v", err2, err)
			}
			return w.Close()
		}, "tensorboard: write ", os.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newW(t)
			err := tt.do(t, w)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want errors.Is %v", err, tt.is)
			}
			if tt.is == nil {
				// Nothing but the version event was written.
				w.Close()
				if events, err := readEvents(w.Path()); err != nil || len(events) != 1 {
					t.Errorf("file holds %d events (%v), want 1", len(events), err)
				}
			}
		})
	}
}

// TestWriterFlush checks that buffered events reach the file at Flush, whole.
func TestWriterFlush(t *testing.T) {
	w, err := newWriter(t.TempDir(), start, "vm")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for step := range int64(3) {
		if err := w.Scalar("loss", step, 1, start); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		events, err := readEvents(w.Path())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(events), int(step)+2; got != want {
			t.Fatalf("after Flush %d: %d events in the file, want %d", step, got, want)
		}
	}
}

func TestWriterConcurrent(t *testing.T) {
	w, err := newWriter(t.TempDir(), start, "vm")
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				tag := fmt.Sprintf("g%d", g)
				if err := w.Scalars(int64(i), start, Value{tag, float64(i)}, Value{tag + "/sq", float64(i * i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	events, err := readEvents(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(events), 1+goroutines*each; got != want {
		t.Fatalf("got %d events, want %d", got, want)
	}
	next := map[string]int64{}
	for _, e := range events[1:] {
		tag := e.values[0].tag
		if e.step != next[tag] || e.values[0].simple != float32(e.step) || e.values[1].simple != float32(e.step*e.step) {
			t.Fatalf("event %+v out of order or mixed (want step %d for %s)", e, next[tag], tag)
		}
		next[tag]++
	}
}

func BenchmarkScalars(b *testing.B) {
	w, err := newWriter(b.TempDir(), start, "vm")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	values := make([]Value, 21) // a VOC evaluation: one IoU per class
	for i := range values {
		values[i] = Value{fmt.Sprintf("val/iou/class%02d", i), float64(i) / 21}
	}
	b.ReportAllocs()
	step := int64(0)
	for b.Loop() {
		w.Scalars(step, start, values...)
		step++
	}
}
