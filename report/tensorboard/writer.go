package tensorboard

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FilePrefix starts the name of every event file; TensorBoard reads the files
// whose names contain "tfevents".
const FilePrefix = "events.out.tfevents."

// ErrClosed is returned by a Writer's methods after Close.
var ErrClosed = errors.New("tensorboard: writer is closed")

// Value is one scalar of a summary: TensorBoard plots a curve per Tag.
type Value struct {
	Tag   string
	Value float64
}

// A Writer appends Events to one new event file. Its methods may be called
// from several goroutines. Writes are buffered: TensorBoard sees them after
// Flush or Close. The first write error is kept and returned by every later
// call.
type Writer struct {
	mu   sync.Mutex
	path string
	f    *os.File // nil after Close
	bw   *bufio.Writer
	ev   []byte // scratch: one encoded Event
	rec  []byte // scratch: the Event framed as a TFRecord
	err  error
}

// NewWriter creates dir if needed and, in it, a new event file named as
// TensorFlow names them, events.out.tfevents.<unix seconds, 10 digits>.<host>,
// whose first Event holds file_version "brain.Event:2". Files already in dir
// are never opened: a resumed run gets a file of its own (with a ".1", ".2"...
// suffix when started in the same second as an earlier one), which
// TensorBoard reads after the earlier files.
func NewWriter(dir string) (*Writer, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return newWriter(dir, time.Now(), host)
}

// maxSuffix bounds the search for a free file name.
const maxSuffix = 1000

func newWriter(dir string, now time.Time, host string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, host)
	base := filepath.Join(dir, fmt.Sprintf("%s%010d.%s", FilePrefix, now.Unix(), host))
	var (
		f    *os.File
		path string
		err  error
	)
	for i := 0; i <= maxSuffix; i++ {
		path = base
		if i > 0 {
			path = fmt.Sprintf("%s.%d", base, i)
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	w := &Writer{path: path, f: f, bw: bufio.NewWriter(f)}
	w.ev = appendVersionEvent(w.ev[:0], now)
	w.write()
	if err := w.flush(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// Path returns the name of the event file.
func (w *Writer) Path() string { return w.path }

// Scalar writes one Event holding value under tag at step. The value is
// stored as a float32 (simple_value), as TensorBoard's scalars are: NaN and
// ±Inf are kept, values beyond float32's range round to ±Inf. A zero wall
// means time.Now().
func (w *Writer) Scalar(tag string, step int64, value float64, wall time.Time) error {
	return w.Scalars(step, wall, Value{Tag: tag, Value: value})
}

// Scalars writes one Event holding all values at step, in order (the
// per-class IoU of an evaluation, say). With no values it writes nothing. A
// zero wall means time.Now().
func (w *Writer) Scalars(step int64, wall time.Time, values ...Value) error {
	for i, v := range values {
		if v.Tag == "" {
			return fmt.Errorf("tensorboard: value %d of %d at step %d has an empty tag", i, len(values), step)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	if w.err != nil || len(values) == 0 {
		return w.err
	}
	if wall.IsZero() {
		wall = time.Now()
	}
	w.ev = appendScalarsEvent(w.ev[:0], wall, step, values)
	return w.write()
}

// write frames w.ev as a record and writes it to the buffer.
func (w *Writer) write() error {
	if w.err != nil {
		return w.err
	}
	w.rec = appendRecord(w.rec[:0], w.ev)
	if _, err := w.bw.Write(w.rec); err != nil {
		w.err = fmt.Errorf("tensorboard: %w", err)
	}
	return w.err
}

// Flush writes the buffered Events to the file, where TensorBoard sees them.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	return w.flush()
}

func (w *Writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("tensorboard: %w", err)
	}
	return w.err
}

// Close flushes the buffered Events, syncs the file to disk and closes it.
// It returns the first error met by the Writer. Closing a closed Writer
// returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if err == nil {
		if serr := w.f.Sync(); serr != nil {
			err = fmt.Errorf("tensorboard: %w", serr)
		}
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("tensorboard: %w", cerr)
	}
	w.f = nil
	return err
}
