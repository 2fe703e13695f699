package report

import (
	"errors"
	"io"

	"github.com/vggo/vggo/internal/atomicfile"
)

// WriteFileAtomic writes path through a temporary file in the same directory:
// write, sync, rename, sync the directory. On failure the temporary file is
// removed and path is left as it was. The directory sync is best effort (some
// file systems cannot sync a directory; the data itself is synced).
//
// The temporary file is named after this process (pid and host), as
// checkpoints names its own, so that a clean-up of the run directory
// (checkpoints.NewManager) removes only the files of writers that are gone.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	err := atomicfile.WriteFile(path, write)
	if errors.Is(err, atomicfile.ErrDirSync) {
		return nil
	}
	return err
}
