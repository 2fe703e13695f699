// Package atomicfile writes files atomically (temporary file, sync, rename, sync the
// directory) and removes the temporary files that writers which died left behind.
//
// A temporary file is named after its target and its owner:
//
//	.<target>.tmp-<pid>-<host tag>-<random>
//
// so that a clean-up can tell a dead writer's leftovers from the file that a live
// process (another run sharing the directory by mistake, or this process's own
// concurrent write) is still writing. vggo's checkpoints and reports both write
// through here, so one clean-up covers a run directory.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"github.com/vggo/vggo/internal/proc"
)

// ErrDirSync marks a write whose file is in place but whose directory could not be
// synced, so the rename may not survive a crash. Callers that treat the directory
// sync as best effort ignore it with errors.Is.
var ErrDirSync = errors.New("directory sync failed")

// LegacyAge is how old a temporary file named by an earlier vggo (no owner in the
// name) must be before Clean removes it: far longer than any write takes.
const LegacyAge = time.Hour

var (
	// tempRE matches TempName: target, pid, host tag, random suffix.
	tempRE = regexp.MustCompile(`^\.(.+)\.tmp-([0-9]+)-([0-9a-f]{8})-([0-9a-z]+)$`)
	// legacyRE matches the names of earlier versions: checkpoints'
	// ".<x>.safetensors.tmp-<digits>" and report's ".<x>.<digits>.tmp".
	legacyRE = regexp.MustCompile(`^\..+(\.safetensors\.tmp-[0-9]+|\.[0-9]+\.tmp)$`)
)

// TempName is the name of a temporary file for target (a base name) written by
// process pid on the host with tag hostTag (proc.HostTag).
func TempName(target string, pid int, hostTag, random string) string {
	return "." + target + ".tmp-" + strconv.Itoa(pid) + "-" + hostTag + "-" + random
}

// Owner parses a name that TempName made. ok is false for any other name.
func Owner(name string) (target string, pid int, hostTag string, ok bool) {
	m := tempRE.FindStringSubmatch(name)
	if m == nil {
		return "", 0, "", false
	}
	pid, err := strconv.Atoi(m[2])
	if err != nil {
		return "", 0, "", false
	}
	return m[1], pid, m[3], true
}

// WriteFile writes path atomically: write receives a buffered writer on a new
// temporary file in path's directory (named by TempName for this process); the
// file is flushed, given mode 0644, synced, closed, renamed over path, and the
// directory is synced. A crash at any instant leaves the previous file or the new
// one. On error the temporary file is removed and path is untouched, except for an
// error wrapping ErrDirSync, after which the new file is in place. Errors are not
// prefixed; callers add the package and the path.
func WriteFile(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := create(dir, base)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !errors.Is(err, ErrDirSync) {
			f.Close() // may already be closed; the error does not matter then
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: the new file is in place, but syncing directory %s failed, so the rename may not survive a crash: %v", ErrDirSync, dir, err)
	}
	return nil
}

// create makes a new temporary file for target base in dir.
func create(dir, base string) (*os.File, error) {
	pid, tag := os.Getpid(), proc.HostTag(proc.Hostname())
	for range 100 {
		name := filepath.Join(dir, TempName(base, pid, tag, strconv.FormatUint(uint64(rand.Uint32()), 36)))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("cannot create a temporary file for %s in %s: too many name collisions", base, dir)
}

// syncDir makes a rename in dir durable. Windows cannot open directories for sync.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Clean removes the temporary files in dir whose writer is gone: those named by
// TempName with this host's tag and the pid of a process that is no longer running,
// and those named by earlier versions of vggo (no owner in the name) that are older
// than LegacyAge. It keeps the files of live processes (this one included) and of
// other hosts, which it cannot check. It returns the base names it removed.
//
// A pid reused by an unrelated process keeps a dead writer's file until that
// process ends; the file is garbage but harmless.
func Clean(dir string) (removed []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	tag := proc.HostTag(proc.Hostname())
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !stale(e, tag) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

func stale(e fs.DirEntry, hostTag string) bool {
	if _, pid, tag, ok := Owner(e.Name()); ok {
		return tag == hostTag && !proc.Alive(pid)
	}
	if !legacyRE.MatchString(e.Name()) {
		return false
	}
	info, err := e.Info()
	return err == nil && time.Since(info.ModTime()) > LegacyAge
}
