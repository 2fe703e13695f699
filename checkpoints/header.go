package checkpoints

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FormatError reports a file that is not a valid safetensors file or vggo checkpoint.
// Err is ErrTruncated or ErrChecksum when the file is cut short or its data does not
// match its checksum, nil otherwise; errors.Is sees it through Unwrap.
type FormatError struct {
	Path   string
	Reason string
	Err    error
}

func (e *FormatError) Error() string { return "checkpoints: " + e.Path + ": " + e.Reason }
func (e *FormatError) Unwrap() error { return e.Err }

var (
	// ErrTruncated marks a file that ends before its header says it should: an
	// interrupted copy or download, or a file written by something less careful than
	// Save.
	ErrTruncated = errors.New("checkpoints: file truncated")
	// ErrChecksum marks a file that does not hash to the checksum in its metadata
	// (header and data since format 2, data only in format 1).
	ErrChecksum = errors.New("checkpoints: checksum mismatch")
)

// entry is one tensor's header record.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end uint64
}

// header is a parsed and validated header.
type header struct {
	entries   []entry // sorted by data offset
	raw       []byte  // the JSON header as read
	metadata  map[string]string
	dataStart int64  // file offset of the data section
	dataLen   uint64 // declared (and actual) length of the data section
}

// readHeader parses and validates the header of the safetensors file open as fh.
func readHeader(fh *os.File, path string) (*header, error) {
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	if st.IsDir() {
		return nil, &FormatError{Path: path, Reason: "is a directory, not a safetensors file"}
	}
	return parseHeader(fh, st.Size(), path)
}

// parseHeader parses and validates the header of the size-byte safetensors file in r.
func parseHeader(ra io.ReaderAt, size int64, path string) (*header, error) {
	fh := io.NewSectionReader(ra, 0, size)
	bad := func(format string, args ...any) error {
		return &FormatError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	truncated := func(format string, args ...any) error {
		return &FormatError{Path: path, Reason: fmt.Sprintf(format, args...), Err: ErrTruncated}
	}
	if size < 8 {
		return nil, truncated("file is %d bytes, shorter than the 8-byte length that starts a safetensors file (empty or cut short)", size)
	}
	var prefix [8]byte
	if _, err := io.ReadFull(fh, prefix[:]); err != nil {
		return nil, fmt.Errorf("checkpoints: read %s: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > maxHeaderSize {
		return nil, bad("header length %d is beyond the 100 MB limit (not a safetensors file?)", n)
	}
	if n > uint64(size-8) {
		return nil, truncated("header length %d runs past the end of the %d-byte file (cut short, or not a safetensors file)", n, size)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(fh, raw); err != nil {
		return nil, fmt.Errorf("checkpoints: read %s: %w", path, err)
	}
	h := &header{dataStart: 8 + int64(n), metadata: map[string]string{}, raw: raw}
	if err := h.parse(raw); err != nil {
		return nil, bad("invalid header: %v", err)
	}
	slices.SortStableFunc(h.entries, func(a, b entry) int {
		if a.begin != b.begin {
			return cmpU64(a.begin, b.begin)
		}
		return cmpU64(a.end, b.end)
	})
	var expect uint64
	for i, e := range h.entries {
		switch {
		case e.end < e.begin:
			return nil, bad("tensor %q: data_offsets [%d, %d] end before they begin", e.name, e.begin, e.end)
		case e.begin < expect:
			return nil, bad("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.name, e.begin, e.end, h.entries[i-1].name, expect)
		case e.begin > expect:
			return nil, bad("tensor %q: data_offsets [%d, %d] leave a gap of %d bytes after offset %d (safetensors data must be contiguous)", e.name, e.begin, e.end, e.begin-expect, expect)
		}
		expect = e.end
		numel := uint64(1)
		overflow := false
		for _, d := range e.shape {
			hi, lo := bits.Mul64(numel, uint64(d))
			overflow = overflow || hi != 0
			numel = lo
		}
		hi, nbytes := bits.Mul64(numel, dtypeSizes[e.dtype])
		if overflow || hi != 0 || nbytes != e.end-e.begin {
			return nil, bad("tensor %q: data_offsets [%d, %d] hold %d bytes, but %s shape %v needs %s", e.name, e.begin, e.end, e.end-e.begin, e.dtype, e.shape, byteCount(overflow || hi != 0, nbytes))
		}
	}
	h.dataLen = expect
	actual := uint64(size) - 8 - n
	switch {
	case actual < expect:
		return nil, truncated("data section is %d bytes, but the header declares %d (cut short: an interrupted write or copy)", actual, expect)
	case actual > expect:
		return nil, bad("data section is %d bytes, but the header declares %d (%d trailing bytes)", actual, expect, actual-expect)
	}
	return h, nil
}

func byteCount(overflow bool, n uint64) string {
	if overflow {
		return "more than 2^64 bytes"
	}
	return strconv.FormatUint(n, 10)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// jsonEntry is a tensor's record as it appears in the JSON header.
type jsonEntry struct {
	DType       *string   `json:"dtype"`
	Shape       *[]uint64 `json:"shape"`
	DataOffsets *[]uint64 `json:"data_offsets"`
}

// parse decodes the JSON header into h.entries and h.metadata, keeping the keys'
// order and refusing duplicate keys.
func (h *header) parse(raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("not valid UTF-8")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		if key == "__metadata__" {
			var md map[string]any
			if err := dec.Decode(&md); err != nil {
				return fmt.Errorf("__metadata__: %v", err)
			}
			for k, v := range md {
				s, ok := v.(string)
				if !ok {
					return fmt.Errorf("__metadata__ value of %q is %T, not a string", k, v)
				}
				h.metadata[k] = s
			}
			continue
		}
		var je jsonEntry
		if err := dec.Decode(&je); err != nil {
			return fmt.Errorf("tensor %q: %v", key, err)
		}
		switch {
		case je.DType == nil:
			return fmt.Errorf("tensor %q has no dtype", key)
		case je.Shape == nil:
			return fmt.Errorf("tensor %q has no shape", key)
		case je.DataOffsets == nil || len(*je.DataOffsets) != 2:
			return fmt.Errorf("tensor %q: data_offsets must be [begin, end]", key)
		}
		dt := DType(*je.DType)
		if _, ok := dtypeSizes[dt]; !ok {
			return fmt.Errorf("tensor %q has unknown dtype %q", key, dt)
		}
		shape := make([]int, len(*je.Shape))
		for i, d := range *je.Shape {
			if d > 1<<62 {
				return fmt.Errorf("tensor %q: dimension %d is implausibly large", key, d)
			}
			shape[i] = int(d)
		}
		offs := *je.DataOffsets
		h.entries = append(h.entries, entry{name: key, dtype: dt, shape: shape, begin: offs[0], end: offs[1]})
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	// Only whitespace may follow the object (the reference writer pads with spaces).
	if strings.TrimLeft(string(raw[dec.InputOffset():]), " \t\r\n") != "" {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// checksumSpec is what a file's checksum covers.
type checksumSpec struct {
	present bool   // a checksum to verify
	want    uint32 // the recorded value
	header  bool   // format_version >= 2: the header is covered too
	at      int    // then: offset of the 8 digits in the raw header
}

// checksum returns the checksum recorded in the metadata, if any. A vggo checkpoint
// must carry a well-formed one and a supported format version; a foreign file may
// carry none (or a "checksum" of a form vggo does not know, which is ignored). A
// checksum with format_version 2 or more covers the header, whatever the "format"
// says (so that a flip in that value is caught by the checksum, not taken for a
// foreign file); version 1 covers the data section only.
func (h *header) checksum(path string) (checksumSpec, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	ours := h.metadata[MetaFormat] == FormatName
	version := 0
	if v, present := h.metadata[MetaFormatVersion]; ours || present {
		n, err := strconv.Atoi(v)
		switch {
		case (err != nil || n < 1) && ours:
			return checksumSpec{}, bad("format_version %q is not a positive integer", v)
		case n > FormatVersion && ours:
			return checksumSpec{}, bad("format_version %d is newer than this vggo reads (%d); upgrade vggo", n, FormatVersion)
		case err == nil:
			version = n
		}
	}
	s, present := h.metadata[MetaChecksum]
	hex, isCRC := strings.CutPrefix(s, "crc32c:")
	if !present || !isCRC {
		if ours {
			return checksumSpec{}, bad("vggo checkpoint without a crc32c checksum (metadata checksum = %q)", s)
		}
		return checksumSpec{}, nil
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || len(hex) != 8 {
		return checksumSpec{}, bad("malformed checksum %q (want crc32c: and 8 hex digits)", s)
	}
	ck := checksumSpec{present: true, want: uint32(v)}
	if version >= 2 {
		if hex != fmt.Sprintf("%08x", v) {
			return checksumSpec{}, bad("malformed checksum %q (want crc32c: and 8 lowercase hex digits)", s)
		}
		at, err := checksumDigits(h.raw)
		if err != nil {
			return checksumSpec{}, bad("%v", err)
		}
		ck.header, ck.at = true, at
	}
	return ck, nil
}
