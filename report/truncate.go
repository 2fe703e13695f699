package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// TruncateRecords rewrites the metrics file at path, atomically, keeping only the
// records of epochs up to lastEpoch (and dropping a torn last line): a resumed run
// calls it so that the file agrees with the checkpoint it resumes from. A missing file
// is not an error.
func TruncateRecords(path string, lastEpoch int) error {
	recs, err := ReadRecords(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	keep := recs[:0]
	for _, r := range recs {
		if r.Epoch <= lastEpoch {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(recs) && !tornTail(path) {
		return nil
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range keep {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("report: rewrite %s: %w", path, err)
			}
		}
		return nil
	})
}

// tornTail tells whether the file does not end with a newline.
func tornTail(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false
	}
	b := make([]byte, 1)
	_, err = f.ReadAt(b, st.Size()-1)
	return err == nil && b[0] != '\n'
}
