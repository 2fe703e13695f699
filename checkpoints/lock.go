package checkpoints

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vggo/vggo/internal/proc"
)

// LockName is the run lock's file name inside a run directory.
const LockName = "vggo.lock"

// LockOwner identifies the process that holds (or held) a run directory's lock. It is
// what the lock file holds, as JSON.
type LockOwner struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// String reads "vggo pid 1234 on host gpu7 since 2025-05-04 13:02:11 CEST", or "an
// unknown owner" for the zero LockOwner (an unreadable lock file).
func (o LockOwner) String() string {
	if o.PID == 0 {
		return "an unknown owner"
	}
	return fmt.Sprintf("vggo pid %d on host %s since %s", o.PID, o.Host, o.Since.Local().Format("2006-01-02 15:04:05 MST"))
}

// BusyError is LockRun's error for a run directory that another live process holds.
type BusyError struct {
	Dir   string    // the run directory
	Path  string    // its lock file
	Owner LockOwner // zero when the lock file could not be read
}

func (e *BusyError) Error() string {
	if e.Owner.PID == 0 {
		return fmt.Sprintf("checkpoints: run directory %s is in use by an unknown owner (lock file %s is unreadable; "+
			"if no vggo is using the directory, delete the lock file)", e.Dir, e.Path)
	}
	return fmt.Sprintf("checkpoints: run directory %s is in use by %s (wait for that run to end or stop it, or choose another run directory)", e.Dir, e.Owner)
}

// RunLock is an exclusive lock on a run directory, held from LockRun to Close.
type RunLock struct {
	dir, path string
	owner     LockOwner
	prev      *LockOwner // the dead owner whose lock was taken over
	file      *os.File   // flock mode: the locked descriptor; nil in pid mode
	content   []byte     // what this process wrote into the lock file
	once      sync.Once
	closeErr  error
}

// LockRun takes the exclusive lock of run directory dir (created if needed) for this
// process: it creates dir/vggo.lock holding this process's pid, host and start time.
//
// Where the system has flock (Linux, macOS, the BSDs) the lock is a non-blocking
// exclusive flock on that file, which the kernel releases when the process dies
// however it dies; elsewhere (and on file systems without flock) the lock is the file
// itself, and an owner is taken for dead when it ran on this host and its pid is no
// longer running.
//
// A directory whose lock a live process holds (this one included) is refused with a
// *BusyError naming the owner. A stale lock (its owner died without releasing it) is
// taken over: TakenOver and TakeoverMessage then say whose it was, for the caller to
// print. Call Close to release the lock; it removes the lock file.
//
// Only one process of a data-parallel job (rank 0, which writes the run directory)
// should take the lock. The pid-file fallback cannot check owners on other hosts: it
// refuses them as busy.
func LockRun(dir string) (*RunLock, error) {
	return lockRun(dir, haveFlock)
}

func lockRun(dir string, useFlock bool) (*RunLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoints: lock run directory: %w", err)
	}
	l := &RunLock{
		dir:   dir,
		path:  filepath.Join(dir, LockName),
		owner: LockOwner{PID: os.Getpid(), Host: proc.Hostname(), Since: time.Now().UTC().Truncate(time.Second)},
	}
	content, err := json.Marshal(l.owner)
	if err != nil {
		return nil, err
	}
	l.content = append(content, '\n')
	if useFlock {
		err = l.lockFlock()
		if !errors.Is(err, errNoFlock) {
			return l.result(err)
		}
		// The file system does not support flock (some network and FUSE mounts).
	}
	return l.result(l.lockPIDFile())
}

func (l *RunLock) result(err error) (*RunLock, error) {
	if err != nil {
		var busy *BusyError
		if !errors.As(err, &busy) {
			err = fmt.Errorf("checkpoints: lock run directory %s: %w", l.dir, err)
		}
		return nil, err
	}
	return l, nil
}

// errNoFlock reports that flock is not available for the lock file.
var errNoFlock = errors.New("flock not supported")

// lockFlock takes the lock with flock. The lock file is removed on Close while the
// lock is still held, so a process that opened the old file before the removal and
// locks it afterwards must notice that the path now names another file (or none)
// and start again.
func (l *RunLock) lockFlock() error {
	for range 100 {
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if err := flockExclusive(f); err != nil {
			if errors.Is(err, errNoFlock) {
				// Leave no empty file behind for the pid-file fallback to trip on.
				if st, serr := f.Stat(); serr == nil && st.Size() == 0 {
					os.Remove(l.path)
				}
			}
			f.Close()
			if errors.Is(err, errLocked) {
				return l.busy()
			}
			return err
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		if now, err := os.Stat(l.path); err != nil || !os.SameFile(held, now) {
			f.Close() // the holder released and removed it in between: try again
			continue
		}
		old, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			return err
		}
		if len(bytes.TrimSpace(old)) > 0 {
			// Someone held this lock and did not Close: it died (flock is released
			// by the kernel then), so its record is stale.
			prev, _ := parseOwner(old)
			l.prev = &prev
		}
		if err := rewrite(f, l.content); err != nil {
			f.Close()
			return err
		}
		l.file = f
		return nil
	}
	return errors.New("the lock file keeps being replaced; try again")
}

func rewrite(f *os.File, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// lockPIDFile takes the lock by creating the lock file exclusively, taking over a
// lock file whose owner ran on this host and is no longer running. Two processes
// taking over the same stale lock at the same instant are resolved by the exclusive
// create; the takeover itself is best effort (this is the fallback).
func (l *RunLock) lockPIDFile() error {
	for range 100 {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := f.Write(l.content)
			serr := f.Sync()
			cerr := f.Close()
			if err := errors.Join(werr, serr, cerr); err != nil {
				os.Remove(l.path)
				return err
			}
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		owner, ok := l.readOwner()
		if !ok {
			return &BusyError{Dir: l.dir, Path: l.path}
		}
		if owner.Host != l.owner.Host || proc.Alive(owner.PID) {
			return &BusyError{Dir: l.dir, Path: l.path, Owner: owner}
		}
		// Stale: move it aside, and remove it only if it is still the file we judged
		// (another process may have taken it over and written a fresh lock meanwhile).
		aside := l.path + ".stale-" + strconv.Itoa(os.Getpid())
		if err := os.Rename(l.path, aside); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		got, err := os.ReadFile(aside)
		if o, ok := parseOwner(got); err == nil && ok && o == owner {
			os.Remove(aside)
			l.prev = &owner
			continue
		}
		os.Rename(aside, l.path) // a fresh lock: put it back
	}
	return errors.New("the lock file keeps being replaced; try again")
}

// busy reads the owner of a lock that another process holds.
func (l *RunLock) busy() error {
	owner, _ := l.readOwner()
	return &BusyError{Dir: l.dir, Path: l.path, Owner: owner}
}

// readOwner reads the lock file, waiting briefly for an owner that has just created
// it to write its record.
func (l *RunLock) readOwner() (LockOwner, bool) {
	for range 20 {
		if b, err := os.ReadFile(l.path); err == nil {
			if o, ok := parseOwner(b); ok {
				return o, true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return LockOwner{}, false
}

func parseOwner(b []byte) (LockOwner, bool) {
	var o LockOwner
	if err := json.Unmarshal(b, &o); err != nil || o.PID <= 0 {
		return LockOwner{}, false
	}
	return o, true
}

// Path is the lock file.
func (l *RunLock) Path() string { return l.path }

// Owner is this process's record in the lock file.
func (l *RunLock) Owner() LockOwner { return l.owner }

// TakenOver returns the owner of the stale lock that LockRun took over (the zero
// LockOwner if its record was unreadable); ok is false when the lock was free.
func (l *RunLock) TakenOver() (prev LockOwner, ok bool) {
	if l.prev == nil {
		return LockOwner{}, false
	}
	return *l.prev, true
}

// TakeoverMessage is a line for the caller to print when LockRun took over a stale
// lock, or "" when it did not: "run directory D: took over the lock of vggo pid 1234
// on host h since ..., which is no longer running".
func (l *RunLock) TakeoverMessage() string {
	if l.prev == nil {
		return ""
	}
	return fmt.Sprintf("run directory %s: took over the lock of %s, which is no longer running", l.dir, *l.prev)
}

// Close releases the lock and removes the lock file. Calling it again does nothing.
func (l *RunLock) Close() error {
	l.once.Do(func() {
		if l.file != nil {
			// Remove while still locked, so that nobody locks a file about to vanish
			// without noticing (lockFlock checks the path still names what it locked).
			rerr := os.Remove(l.path)
			cerr := l.file.Close()
			l.closeErr = errors.Join(rerr, cerr)
		} else if b, err := os.ReadFile(l.path); err == nil && bytes.Equal(b, l.content) {
			l.closeErr = os.Remove(l.path)
		}
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("checkpoints: unlock run directory %s: %w", l.dir, l.closeErr)
		}
	})
	return l.closeErr
}
