package checkpoints

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/vggo/vggo/internal/atomicfile"
)

// File names inside a run directory.
const (
	LastName = "last.safetensors"
	BestName = "best.safetensors"
)

// numberedRE matches the names NumberedName makes (wider numbers included).
var numberedRE = regexp.MustCompile(`^ckpt-epoch([0-9]+)-step([0-9]+)\.safetensors$`)

// NumberedName is the file name of the periodic checkpoint taken at an epoch and a
// global step: ckpt-epoch0003-step000120.safetensors.
func NumberedName(epoch, step int) string {
	return fmt.Sprintf("ckpt-epoch%04d-step%06d.safetensors", epoch, step)
}

// Numbered is a periodic checkpoint found in a run directory.
type Numbered struct {
	Path        string
	Epoch, Step int
}

// Manager writes a run directory's checkpoints: last.safetensors, best.safetensors,
// and numbered ones of which it keeps the newest Keep (by epoch, then step). It never
// deletes last or best, nor files it did not name. It assumes it is the only writer of
// the directory (hold LockRun's lock to make sure); its methods are safe for concurrent
// use.
type Manager struct {
	dir     string
	keep    int
	removed []string
	mu      sync.Mutex
}

// NewManager creates dir if needed and returns a Manager that keeps the newest keep
// numbered checkpoints (keep 0: it writes none). It removes the temporary files that
// interrupted writes left in dir, its own and report's alike, but only those whose
// writer is gone: temporary files carry their writer's pid and host in their name (see
// internal/atomicfile), and a file of a live process, or of another host, is kept. So
// a second process that opens a run directory by mistake cannot delete the file that
// the run's owner is writing; the run lock (LockRun) is what refuses that process.
// Removed lists the names of the files removed.
func NewManager(dir string, keep int) (*Manager, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoints: run directory: %w", err)
	}
	removed, err := atomicfile.Clean(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: removing stale temporary files: %w", err)
	}
	return &Manager{dir: dir, keep: keep, removed: removed}, nil
}

// Removed returns the base names of the stale temporary files that NewManager removed.
func (m *Manager) Removed() []string { return slices.Clone(m.removed) }

// Dir is the run directory.
func (m *Manager) Dir() string { return m.dir }

// LastPath and BestPath are the paths of last.safetensors and best.safetensors.
func (m *Manager) LastPath() string { return filepath.Join(m.dir, LastName) }
func (m *Manager) BestPath() string { return filepath.Join(m.dir, BestName) }

// SaveLast atomically replaces last.safetensors with f.
func (m *Manager) SaveLast(f *File) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Save(m.LastPath(), f)
}

// SaveBest atomically replaces best.safetensors with f.
func (m *Manager) SaveBest(f *File) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Save(m.BestPath(), f)
}

// SaveNumbered writes f as NumberedName(epoch, step), then deletes the oldest
// numbered checkpoints beyond Keep. It returns the new file's path, or "" when Keep is
// 0 (no numbered checkpoints).
func (m *Manager) SaveNumbered(f *File, epoch, step int) (string, error) {
	if m.keep <= 0 {
		return "", nil
	}
	if epoch < 0 || step < 0 {
		return "", fmt.Errorf("checkpoints: numbered checkpoint with negative epoch %d or step %d", epoch, step)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	path := filepath.Join(m.dir, NumberedName(epoch, step))
	if err := Save(path, f); err != nil {
		return "", err
	}
	return path, m.prune()
}

func (m *Manager) prune() error {
	list, err := m.numbered()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range list[:max(len(list)-m.keep, 0)] {
		if err := os.Remove(n.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("checkpoints: pruning old checkpoints: %w", err)
	}
	return nil
}

// List returns the numbered checkpoints in the directory, oldest first.
func (m *Manager) List() ([]Numbered, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.numbered()
}

func (m *Manager) numbered() ([]Numbered, error) {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: listing checkpoints: %w", err)
	}
	var list []Numbered
	for _, e := range ents {
		sm := numberedRE.FindStringSubmatch(e.Name())
		if sm == nil || !e.Type().IsRegular() {
			continue
		}
		epoch, err1 := strconv.Atoi(sm[1])
		step, err2 := strconv.Atoi(sm[2])
		if err1 != nil || err2 != nil {
			continue // a number too large for int: not ours
		}
		list = append(list, Numbered{Path: filepath.Join(m.dir, e.Name()), Epoch: epoch, Step: step})
	}
	slices.SortFunc(list, func(a, b Numbered) int {
		if a.Epoch != b.Epoch {
			return a.Epoch - b.Epoch
		}
		return a.Step - b.Step
	})
	return list, nil
}
