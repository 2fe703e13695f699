// Package checkpoints saves and loads vggo checkpoints as safetensors files
// (https://huggingface.co/docs/safetensors) with the metadata an exact resume needs,
// writes them atomically, and keeps the newest few.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON header (padded
// with spaces to a multiple of 8, as the reference implementation does), then the data
// section: the tensors' little-endian bytes, back to back, in the order of the header's
// data_offsets (relative to the start of the data section). Files written here load
// with the official safetensors libraries (safetensors.torch.load_file), and plain
// safetensors files from elsewhere (converted torchvision weights, say) load here.
//
// Save adds three metadata strings: "format" = "vggo-checkpoint", "format_version" =
// "2" and "checksum" = "crc32c:" + 8 lowercase hex digits, the CRC-32C (Castagnoli) of
// the whole file (length prefix, header, data section) with the checksum's own 8 digits
// read as "00000000". Version 1 files (earlier vggo) carry the CRC-32C of the data
// section only, and are verified that way. Load verifies the checksum when one is
// present; a file without one (not written by vggo) loads unchecked. Save and Load
// refuse tensors holding NaN or ±Inf (CheckFinite), naming them.
//
// Load also reads PyTorch files (.pth, .pt), detected by content, through package pth.
//
// A run directory belongs to one process at a time: LockRun takes its lock, and
// NewManager removes only the temporary files of writers that are gone.
package checkpoints

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/vggo/vggo/internal/atomicfile"
)

// Metadata keys and values that Save writes.
const (
	MetaFormat        = "format"
	MetaFormatVersion = "format_version"
	MetaChecksum      = "checksum"

	FormatName    = "vggo-checkpoint"
	FormatVersion = 2
)

// maxHeaderSize is the reference implementation's limit on the JSON header (100 MB).
const maxHeaderSize = 100_000_000

// DType is a safetensors element type name.
type DType string

// The element types vggo reads and writes. Other safetensors types (F16, BF16, I32,
// U8, ...) are recognised, so files holding them can be inspected, but Load refuses
// them.
const (
	F32 DType = "F32"
	F64 DType = "F64"
	I64 DType = "I64"
)

// dtypeSizes holds the element size of every safetensors dtype, so that offsets can be
// validated even for types vggo does not decode.
var dtypeSizes = map[DType]uint64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

func (d DType) orF32() DType {
	if d == "" {
		return F32
	}
	return d
}

func (d DType) supported() bool {
	switch d.orF32() {
	case F32, F64, I64:
		return true
	}
	return false
}

// Tensor is one named tensor. DType selects which of Data, F64 and I64 holds the
// values (row-major, len = product of Shape); the other two are nil. A zero DType
// means F32.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []float32 // F32
	F64   []float64 // F64
	I64   []int64   // I64
}

// Numel is the number of elements that Shape describes (1 for a scalar, shape []).
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// len returns the number of values held in the slice selected by DType.
func (t *Tensor) len() int {
	switch t.DType.orF32() {
	case F32:
		return len(t.Data)
	case F64:
		return len(t.F64)
	case I64:
		return len(t.I64)
	}
	return 0
}

// bytes returns the tensor's values as bytes: on a little-endian host, a view of the
// backing array (no copy); nil on a big-endian host (callers then encode in chunks).
func (t *Tensor) bytes() []byte {
	if !nativeLittleEndian() {
		return nil
	}
	switch t.DType.orF32() {
	case F32:
		if len(t.Data) > 0 {
			return unsafe.Slice((*byte)(unsafe.Pointer(&t.Data[0])), 4*len(t.Data))
		}
	case F64:
		if len(t.F64) > 0 {
			return unsafe.Slice((*byte)(unsafe.Pointer(&t.F64[0])), 8*len(t.F64))
		}
	case I64:
		if len(t.I64) > 0 {
			return unsafe.Slice((*byte)(unsafe.Pointer(&t.I64[0])), 8*len(t.I64))
		}
	}
	return []byte{}
}

func nativeLittleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// File is the content of a checkpoint: tensors in file order and string metadata.
type File struct {
	Tensors  []Tensor
	Metadata map[string]string
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// Filter returns a File with the tensors for which keep returns true, in the same
// order, and a copy of the metadata. Tensor values are shared, not copied. Use it to
// export weights only (drop "optim." state) or to leave out buffers before Match.
func (f *File) Filter(keep func(name string) bool) *File {
	out := &File{Metadata: make(map[string]string, len(f.Metadata))}
	for k, v := range f.Metadata {
		out.Metadata[k] = v
	}
	for _, t := range f.Tensors {
		if keep(t.Name) {
			out.Tensors = append(out.Tensors, t)
		}
	}
	return out
}

// Specs lists the name, dtype and shape of every tensor of f, in order.
func (f *File) Specs() []Spec {
	specs := make([]Spec, len(f.Tensors))
	for i, t := range f.Tensors {
		specs[i] = Spec{Name: t.Name, DType: t.DType.orF32(), Shape: t.Shape}
	}
	return specs
}

// validate checks that f can be written: unique, non-empty, valid UTF-8 names, known
// dtypes, shapes that match the data, and valid UTF-8 metadata.
func (f *File) validate() error {
	seen := make(map[string]bool, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		switch {
		case t.Name == "":
			return fmt.Errorf("tensor %d has an empty name", i)
		case t.Name == "__metadata__":
			return fmt.Errorf("tensor %d is named __metadata__, which safetensors reserves", i)
		case !utf8.ValidString(t.Name):
			return fmt.Errorf("tensor name %q is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return fmt.Errorf("tensor %q appears twice (names must be unique)", t.Name)
		case !t.DType.supported():
			return fmt.Errorf("tensor %q: dtype %q cannot be written (use F32, F64 or I64)", t.Name, t.DType)
		}
		seen[t.Name] = true
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		if n := t.Numel(); n != t.len() {
			return fmt.Errorf("tensor %q: shape %v holds %d values, but the %s data has %d", t.Name, t.Shape, n, t.DType.orF32(), t.len())
		}
		others := 0
		switch t.DType.orF32() {
		case F32:
			others = len(t.F64) + len(t.I64)
		case F64:
			others = len(t.Data) + len(t.I64)
		case I64:
			others = len(t.Data) + len(t.F64)
		}
		if others != 0 {
			return fmt.Errorf("tensor %q: dtype %s, but values are also set in another dtype's slice (set only the one DType selects)", t.Name, t.DType.orF32())
		}
	}
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("metadata %q is not valid UTF-8", k)
		}
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumString formats a CRC-32C as stored in the "checksum" metadata.
func checksumString(sum uint32) string { return fmt.Sprintf("crc32c:%08x", sum) }

// Save writes f to path atomically: it writes a temporary file in the same directory,
// syncs it, renames it over path and syncs the directory, so a crash at any instant
// leaves either the previous file or the new one. On error the temporary file is
// removed and the previous file is untouched. Save adds the format, format_version and
// checksum metadata (replacing any such keys in f.Metadata; f itself is not modified).
// Tensors are written in the order of f.Tensors. The file's mode is 0644.
//
// Save refuses a file whose F32 or F64 tensors hold NaN or ±Inf with a
// *NonFiniteError (see CheckFinite), so that a diverged run's state is never written.
func Save(path string, f *File) error {
	return save(path, f, saveOptions{})
}

type saveOptions struct {
	wrap           func(io.Writer) io.Writer // wraps the temporary file's writer (tests inject failures)
	allowNonFinite bool                      // tests write NaN and Inf bit patterns
}

func save(path string, f *File, opt saveOptions) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("checkpoints: save %s: %w", path, err)
	}
	if !opt.allowNonFinite {
		if err := CheckFinite(f.Tensors); err != nil {
			nf := err.(*NonFiniteError)
			nf.Op, nf.Path = "save", path
			return nf
		}
	}
	md := make(map[string]string, len(f.Metadata)+3)
	for k, v := range f.Metadata {
		md[k] = v
	}
	md[MetaFormat] = FormatName
	md[MetaFormatVersion] = strconv.Itoa(FormatVersion)
	md[MetaChecksum] = checksumString(0)
	header := encodeHeader(f.Tensors, md)
	at, err := checksumDigits(header)
	if err != nil {
		return fmt.Errorf("checkpoints: save %s: %w", path, err) // a bug: encodeHeader wrote it
	}
	sum := dataChecksum(headerChecksum(header, at), f.Tensors)
	copy(header[at:], fmt.Sprintf("%08x", sum))

	err = atomicfile.WriteFile(path, func(w io.Writer) error {
		if opt.wrap != nil {
			w = opt.wrap(w)
		}
		return writeTo(w, header, f.Tensors)
	})
	if err != nil {
		return fmt.Errorf("checkpoints: save %s: %w", path, err)
	}
	return nil
}

// checksumPrefix starts the checksum's metadata entry in a header that encodeHeader
// (or any JSON encoder) wrote. In valid JSON it can only occur as that entry: inside a
// string its quotes would be escaped.
const checksumPrefix = `"` + MetaChecksum + `":"crc32c:`

// checksumDigits returns the offset of the checksum's 8 hex digits in the JSON header
// raw, which must hold exactly one checksum entry.
func checksumDigits(raw []byte) (int, error) {
	i := bytes.Index(raw, []byte(checksumPrefix))
	if i < 0 || bytes.Count(raw, []byte(checksumPrefix)) != 1 || len(raw) < i+len(checksumPrefix)+9 {
		return 0, fmt.Errorf("the header does not hold exactly one %s entry", checksumPrefix)
	}
	return i + len(checksumPrefix), nil
}

// headerChecksum is the CRC-32C of the length prefix and the JSON header raw, with the
// 8 checksum digits at offset at read as zeros.
func headerChecksum(raw []byte, at int) uint32 {
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(raw)))
	sum := crc32.Update(0, castagnoli, prefix[:])
	sum = crc32.Update(sum, castagnoli, raw[:at])
	sum = crc32.Update(sum, castagnoli, []byte("00000000"))
	return crc32.Update(sum, castagnoli, raw[at+8:])
}

// dataChecksum continues the CRC-32C sum over the data section that tensors produce.
func dataChecksum(sum uint32, tensors []Tensor) uint32 {
	var scratch []byte
	for i := range tensors {
		if b := tensors[i].bytes(); b != nil {
			sum = crc32.Update(sum, castagnoli, b)
			continue
		}
		if scratch == nil {
			scratch = make([]byte, 1<<16)
		}
		encodeChunks(&tensors[i], scratch, func(b []byte) error {
			sum = crc32.Update(sum, castagnoli, b)
			return nil
		})
	}
	return sum
}

// writeTo writes the length prefix, the header and the data section.
func writeTo(w io.Writer, header []byte, tensors []Tensor) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	var scratch []byte
	for i := range tensors {
		if b := tensors[i].bytes(); b != nil {
			if _, err := w.Write(b); err != nil {
				return err
			}
			continue
		}
		if scratch == nil {
			scratch = make([]byte, 1<<16)
		}
		err := encodeChunks(&tensors[i], scratch, func(b []byte) error {
			_, err := w.Write(b)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// encodeChunks passes t's values, little-endian, to fn in pieces of at most
// len(scratch) bytes (the portable path for big-endian hosts).
func encodeChunks(t *Tensor, scratch []byte, fn func([]byte) error) error {
	le := binary.LittleEndian
	switch t.DType.orF32() {
	case F32:
		for v := t.Data; len(v) > 0; {
			k := min(len(v), len(scratch)/4)
			for j, x := range v[:k] {
				le.PutUint32(scratch[4*j:], math.Float32bits(x))
			}
			if err := fn(scratch[:4*k]); err != nil {
				return err
			}
			v = v[k:]
		}
	case F64:
		for v := t.F64; len(v) > 0; {
			k := min(len(v), len(scratch)/8)
			for j, x := range v[:k] {
				le.PutUint64(scratch[8*j:], math.Float64bits(x))
			}
			if err := fn(scratch[:8*k]); err != nil {
				return err
			}
			v = v[k:]
		}
	case I64:
		for v := t.I64; len(v) > 0; {
			k := min(len(v), len(scratch)/8)
			for j, x := range v[:k] {
				le.PutUint64(scratch[8*j:], uint64(x))
			}
			if err := fn(scratch[:8*k]); err != nil {
				return err
			}
			v = v[k:]
		}
	}
	return nil
}

// encodeHeader builds the JSON header: "__metadata__" first (keys sorted), then the
// tensors in order with contiguous data_offsets, padded with spaces to a multiple of 8.
func encodeHeader(tensors []Tensor, md map[string]string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	if len(md) > 0 {
		b.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsonString(k))
			b.WriteByte(':')
			b.WriteString(jsonString(md[k]))
		}
		b.WriteByte('}')
		first = false
	}
	var offset uint64
	for i := range tensors {
		t := &tensors[i]
		if !first {
			b.WriteByte(',')
		}
		first = false
		dt := t.DType.orF32()
		end := offset + uint64(t.len())*dtypeSizes[dt]
		b.WriteString(jsonString(t.Name))
		b.WriteString(`:{"dtype":"`)
		b.WriteString(string(dt))
		b.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		b.WriteString(`],"data_offsets":[`)
		b.WriteString(strconv.FormatUint(offset, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatUint(end, 10))
		b.WriteString("]}")
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return []byte(b.String())
}

// jsonString returns s as a JSON string literal (s is valid UTF-8; <, > and & are
// kept as they are, as serde_json writes them).
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	return strings.TrimSuffix(b.String(), "\n")
}

// Load reads a safetensors file or a PyTorch file (.pth, .pt: torch.save of a
// state_dict or of a training-checkpoint dict holding one), telling them apart by their
// first bytes, not by the extension. A PyTorch file is read by package pth (floats as
// F32, integers as I64, num_batches_tracked left out, no pickled code run); its File
// has no vggo metadata but MetaSourceFormat and, for a training checkpoint,
// MetaStateDictKey. Its tensors are checked for NaN and ±Inf as below.
//
// For a safetensors file, Load refuses, with a *FormatError naming path, a file
// that is too short, has a header length beyond the file, an invalid header, tensor
// offsets that are out of range, overlap, leave gaps or disagree with dtype×shape, a
// data section shorter (ErrTruncated) or longer than the header declares, an element
// type other than F32, F64 or I64, a vggo checkpoint from a newer format version, or a
// checksum that does not match the file (ErrChecksum: the header and data for format
// 2, the data for format 1). It refuses F32 or F64 tensors holding NaN or ±Inf with a
// *NonFiniteError naming them (checked after the checksum: a corrupt file is reported
// as corrupt). A file without a checksum
// (not written by vggo) loads without one. A missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds. Tensors come back in data-section order.
func Load(path string) (*File, error) {
	return load(path, true)
}

func load(path string, checkFinite bool) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: load: %w", err)
	}
	defer fh.Close()
	if isPyTorch(sniff(fh)) {
		st, err := fh.Stat()
		if err != nil {
			return nil, fmt.Errorf("checkpoints: load: %w", err)
		}
		return loadPyTorch(fh, st.Size(), path, checkFinite)
	}
	h, err := readHeader(fh, path)
	if err != nil {
		return nil, err
	}
	return decode(fh, h, path, checkFinite)
}

// LoadBytes is Load for a file already in memory (b, read from path: the name used in
// errors), with the same checks.
func LoadBytes(b []byte, path string) (*File, error) {
	return loadBytes(b, path, true)
}

func loadBytes(b []byte, path string, checkFinite bool) (*File, error) {
	r := bytes.NewReader(b)
	if isPyTorch(sniffBytes(b)) {
		return loadPyTorch(r, int64(len(b)), path, checkFinite)
	}
	h, err := parseHeader(r, int64(len(b)), path)
	if err != nil {
		return nil, err
	}
	return decode(r, h, path, checkFinite)
}

// decode reads and checks the tensors that h describes from ra.
func decode(ra io.ReaderAt, h *header, path string, checkFinite bool) (*File, error) {
	for _, e := range h.entries {
		if !e.dtype.supported() {
			return nil, &FormatError{Path: path, Reason: fmt.Sprintf("tensor %q has dtype %s, which vggo does not read (convert it to float32 before saving, e.g. tensor.float() in PyTorch)", e.name, e.dtype)}
		}
	}
	ck, err := h.checksum(path)
	if err != nil {
		return nil, err
	}
	var sum uint32
	if ck.header {
		sum = headerChecksum(h.raw, ck.at)
	}

	f := &File{Tensors: make([]Tensor, len(h.entries)), Metadata: h.metadata}
	r := bufio.NewReaderSize(io.NewSectionReader(ra, h.dataStart, int64(h.dataLen)), 1<<20)
	var scratch []byte
	for i, e := range h.entries {
		t := Tensor{Name: e.name, DType: e.dtype, Shape: e.shape}
		n := int(e.end-e.begin) / int(dtypeSizes[e.dtype])
		switch e.dtype {
		case F32:
			t.Data = make([]float32, n)
		case F64:
			t.F64 = make([]float64, n)
		case I64:
			t.I64 = make([]int64, n)
		}
		if b := t.bytes(); b != nil {
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, &FormatError{Path: path, Reason: fmt.Sprintf("reading tensor %q: %v", e.name, err), Err: ErrTruncated}
			}
			sum = crc32.Update(sum, castagnoli, b)
		} else {
			if scratch == nil {
				scratch = make([]byte, 1<<16)
			}
			if err := decodeChunks(r, &t, scratch, &sum); err != nil {
				return nil, &FormatError{Path: path, Reason: fmt.Sprintf("reading tensor %q: %v", e.name, err), Err: ErrTruncated}
			}
		}
		f.Tensors[i] = t
	}
	if ck.present && sum != ck.want {
		what := "the data hashes"
		if ck.header {
			what = "the header and data hash"
		}
		return nil, &FormatError{Path: path, Err: ErrChecksum, Reason: fmt.Sprintf(
			"checksum mismatch: the header records %s, %s to %s (the file was corrupted on disk or in transfer; use another checkpoint)",
			checksumString(ck.want), what, checksumString(sum))}
	}
	if checkFinite {
		if err := CheckFinite(f.Tensors); err != nil {
			nf := err.(*NonFiniteError)
			nf.Op, nf.Path = "load", path
			return nil, nf
		}
	}
	return f, nil
}

// decodeChunks fills t's slice from r through scratch (big-endian hosts), updating sum.
func decodeChunks(r io.Reader, t *Tensor, scratch []byte, sum *uint32) error {
	le := binary.LittleEndian
	switch t.DType {
	case F32:
		for v := t.Data; len(v) > 0; {
			k := min(len(v), len(scratch)/4)
			b := scratch[:4*k]
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			*sum = crc32.Update(*sum, castagnoli, b)
			for j := range v[:k] {
				v[j] = math.Float32frombits(le.Uint32(b[4*j:]))
			}
			v = v[k:]
		}
	case F64:
		for v := t.F64; len(v) > 0; {
			k := min(len(v), len(scratch)/8)
			b := scratch[:8*k]
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			*sum = crc32.Update(*sum, castagnoli, b)
			for j := range v[:k] {
				v[j] = math.Float64frombits(le.Uint64(b[8*j:]))
			}
			v = v[k:]
		}
	case I64:
		for v := t.I64; len(v) > 0; {
			k := min(len(v), len(scratch)/8)
			b := scratch[:8*k]
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			*sum = crc32.Update(*sum, castagnoli, b)
			for j := range v[:k] {
				v[j] = int64(le.Uint64(b[8*j:]))
			}
			v = v[k:]
		}
	}
	return nil
}

// Header is what Inspect reads from a file without loading its data.
type Header struct {
	Specs    []Spec            // in data-section order
	Metadata map[string]string // never nil
}

// Inspect reads and validates the header of a safetensors file (the same checks as
// Load, short of reading the data and verifying the checksum), or the pickle of a
// PyTorch file, so that names, shapes and metadata can be examined without reading
// gigabytes. Any dtype is accepted.
func Inspect(path string) (*Header, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: inspect: %w", err)
	}
	defer fh.Close()
	if isPyTorch(sniff(fh)) {
		return inspectPyTorch(fh, path)
	}
	h, err := readHeader(fh, path)
	if err != nil {
		return nil, err
	}
	if _, err := h.checksum(path); err != nil {
		return nil, err
	}
	out := &Header{Specs: make([]Spec, len(h.entries)), Metadata: h.metadata}
	for i, e := range h.entries {
		out.Specs[i] = Spec{Name: e.name, DType: e.dtype, Shape: e.shape}
	}
	return out, nil
}
