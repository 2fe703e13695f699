// Package pth reads the tensors of PyTorch checkpoint files (torch.save of a state_dict,
// or of a training checkpoint dict holding one) without Python: the zip format of
// torch >= 1.6 and the legacy format before it
// (https://pytorch.org/docs/stable/notes/serialization.html).
//
// A .pth file is a pickle, and a pickle is a program. This reader runs only the opcodes
// that build data (dicts, lists, tuples, strings, numbers) and resolves only the globals
// a state_dict names (collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
// _rebuild_parameter, the torch.*Storage types, and argparse.Namespace, which
// torchvision's training scripts store inertly); any other global is refused with a
// *GlobalError naming it. Nothing is ever called.
//
// Floating-point tensors (float32, float16, bfloat16, float64) come back as float32,
// integer and bool tensors as int64; batch norm's num_batches_tracked counters are
// skipped. Storages are read once, straight into the tensors' memory when a tensor is
// the only contiguous view of its storage (the usual case), so reading a file holds
// one copy of its weights.
package pth

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
)

// Tensor is one named tensor of the state_dict. Data holds float tensors (converted to
// float32), I64 integer and bool tensors; both row-major with len = product of Shape.
type Tensor struct {
	Name  string
	DType DType // the type stored in the file
	Shape []int
	Data  []float32
	I64   []int64
}

// File is what Read found.
type File struct {
	Format  string   // "zip" (torch >= 1.6) or "legacy"
	Key     string   // the entry of a training-checkpoint dict that held the state_dict ("" when the file is one)
	Prefix  string   // a prefix removed from every name ("module." of DataParallel), or ""
	Tensors []Tensor // in the state_dict's order
	Skipped []string // entries not returned: num_batches_tracked counters, non-tensor values
}

// FormatError reports a file that is not a readable PyTorch checkpoint. Err is
// ErrTruncated for a file cut short, ErrCorrupt for data that fails its zip CRC-32.
type FormatError struct {
	Path   string
	Reason string
	Err    error
}

func (e *FormatError) Error() string { return "pth: " + e.Path + ": " + e.Reason }
func (e *FormatError) Unwrap() error { return e.Err }

var (
	// ErrTruncated marks a file that ends early (an interrupted copy or download).
	ErrTruncated = errors.New("pth: file truncated")
	// ErrCorrupt marks stored data that does not match its CRC-32.
	ErrCorrupt = errors.New("pth: corrupt data")
)

// legacyMagic is the pickled magic number that starts a legacy (pre-1.6) file:
// PROTO 2, LONG1 of 10 bytes 0x1950a86a20f9469cfc6c.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// Sniff tells from a file's first bytes whether it is a PyTorch file: "zip" (any zip
// archive, as torch >= 1.6 writes), "legacy", "tar" (the format before torch 0.4,
// which Read refuses), or "".
func Sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return "zip"
	case bytes.HasPrefix(head, legacyMagic):
		return "legacy"
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return "tar"
	}
	return ""
}

// Options change what Read does.
type Options struct {
	// NoData reads the pickle only: names, dtypes and shapes, with nil Data and I64.
	NoData bool
}

// Read reads the PyTorch file of the given size from r; name is used in errors.
func Read(r io.ReaderAt, size int64, name string, opt Options) (*File, error) {
	head := make([]byte, 512)
	n, _ := r.ReadAt(head, 0)
	switch Sniff(head[:n]) {
	case "zip":
		return readZip(r, size, name, opt)
	case "legacy":
		return readLegacy(r, size, name, opt)
	case "tar":
		return nil, &FormatError{Path: name, Reason: "a tar archive, PyTorch's format before 0.4, which vggo does not read (load it in a recent torch and re-save it with torch.save(state_dict, path))"}
	}
	return nil, &FormatError{Path: name, Reason: "not a PyTorch file (neither a zip archive nor a legacy torch.save pickle)"}
}

// maxPickle bounds the pickle of a zip file: a state_dict's pickle is kilobytes.
const maxPickle = 256 << 20

func readZip(r io.ReaderAt, size int64, name string, opt Options) (*File, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, &FormatError{Path: name, Reason: fmt.Sprintf("a truncated or damaged zip archive (%v)", err), Err: ErrTruncated}
	}
	files := map[string]*zip.File{}
	var pkl *zip.File
	torchScript := false
	for _, f := range zr.File {
		files[f.Name] = f
		dir, base := path.Split(f.Name)
		if base == "constants.pkl" {
			torchScript = true
		}
		if base == "data.pkl" && strings.Count(dir, "/") == 1 && pkl == nil {
			pkl = f
		}
	}
	if pkl == nil {
		if torchScript {
			return nil, &FormatError{Path: name, Reason: "a TorchScript archive (torch.jit.save), not a state_dict: save one with torch.save(model.state_dict(), path)"}
		}
		return nil, &FormatError{Path: name, Reason: "a zip archive without data.pkl: not a file torch.save wrote"}
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if f := files[prefix+"byteorder"]; f != nil {
		b, err := readAllLimit(f, 16)
		if err != nil {
			return nil, zipErr(name, f.Name, err)
		}
		if string(b) != "little" {
			return nil, &FormatError{Path: name, Reason: fmt.Sprintf("byte order %q: vggo reads little-endian files only", b)}
		}
	}
	if pkl.UncompressedSize64 > maxPickle {
		return nil, &FormatError{Path: name, Reason: fmt.Sprintf("%s is %d bytes: not a state_dict", pkl.Name, pkl.UncompressedSize64)}
	}
	p, err := readAllLimit(pkl, maxPickle)
	if err != nil {
		return nil, zipErr(name, pkl.Name, err)
	}
	storages := map[string]*storageRef{}
	persid := func(pid any) (any, error) {
		// ('storage', storage_type, key, location, numel)
		t, ok := pid.(pyTuple)
		if !ok || len(t) != 5 || t[0] != "storage" {
			return nil, pickleErr("persistent id %s is not a storage", typeName(pid))
		}
		g, ok1 := t[1].(global)
		key, ok2 := t[2].(string)
		numel, ok3 := t[4].(int64)
		if !ok1 || g.kind != gStorage || !ok2 || !ok3 || numel < 0 {
			return nil, pickleErr("malformed storage id %v", t)
		}
		return storageFor(storages, key, g.dtype, numel)
	}
	obj, err := newUnpickler(bytes.NewReader(p), int64(len(p)), name, persid).load()
	if err != nil {
		return nil, wrapPickle(name, pkl.Name, err)
	}
	out, refs, err := stateDict(obj, name)
	if err != nil {
		return nil, err
	}
	out.Format = "zip"
	if opt.NoData {
		return out, nil
	}
	for _, st := range storageOrder(refs) {
		f := files[prefix+"data/"+st.key]
		if f == nil {
			return nil, &FormatError{Path: name, Reason: fmt.Sprintf("storage %q is missing from the archive (%sdata/%s)", st.key, prefix, st.key)}
		}
		want := uint64(st.numel) * uint64(dtypeSize[st.dtype])
		if f.UncompressedSize64 != want {
			return nil, &FormatError{Path: name, Err: ErrCorrupt, Reason: fmt.Sprintf("storage %s holds %d bytes, the pickle declares %d %s values (%d bytes)", f.Name, f.UncompressedSize64, st.numel, st.dtype, want)}
		}
		rc, err := f.Open()
		if err != nil {
			return nil, zipErr(name, f.Name, err)
		}
		err = fill(rc, st, refs[st], out)
		if err == nil {
			// Read to the end so that the zip reader checks the CRC-32.
			var n int64
			n, err = io.Copy(io.Discard, rc)
			if err == nil && n != 0 {
				err = fmt.Errorf("%d bytes past the storage", n)
			}
		}
		rc.Close()
		if err != nil {
			return nil, zipErr(name, f.Name, err)
		}
	}
	return out, nil
}

func readAllLimit(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("longer than %d bytes", limit)
	}
	return b, nil
}

func zipErr(name, entry string, err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return &FormatError{Path: name, Err: ErrCorrupt, Reason: fmt.Sprintf("%s fails its CRC-32 check (the file was corrupted on disk or in transfer)", entry)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &FormatError{Path: name, Err: ErrTruncated, Reason: fmt.Sprintf("%s ends early (the file is truncated)", entry)}
	}
	return &FormatError{Path: name, Reason: fmt.Sprintf("reading %s: %v", entry, err)}
}

func wrapPickle(name, where string, err error) error {
	if errors.Is(err, errPickle) {
		return &FormatError{Path: name, Reason: fmt.Sprintf("%s: %v", where, err)}
	}
	return err
}

func storageFor(storages map[string]*storageRef, key string, dt DType, numel int64) (*storageRef, error) {
	if numel > math.MaxInt32*64 {
		return nil, pickleErr("storage %q of %d values", key, numel)
	}
	if st, ok := storages[key]; ok {
		if st.dtype != dt || st.numel != int(numel) {
			return nil, pickleErr("storage %q declared twice, differently", key)
		}
		return st, nil
	}
	st := &storageRef{key: key, dtype: dt, numel: int(numel)}
	storages[key] = st
	return st, nil
}

// candidateKeys are the entries of a training checkpoint dict that may hold the model's
// state_dict, in the order they are tried.
var candidateKeys = []string{"model", "state_dict", "model_state_dict", "model_state", "net"}

// stateDict finds the state_dict in the unpickled object and declares its tensors in
// out, returning the tensor views of each storage.
func stateDict(obj any, name string) (*File, map[*storageRef][]view, error) {
	top, ok := obj.(*pyDict)
	if !ok {
		return nil, nil, &FormatError{Path: name, Reason: fmt.Sprintf("holds %s, not a state_dict (a dict of tensors): save one with torch.save(model.state_dict(), path)", typeName(obj))}
	}
	out := &File{}
	sd := top
	if !hasTensor(top) {
		for _, k := range candidateKeys {
			if v, ok := top.get(k); ok {
				if d, ok := v.(*pyDict); ok && hasTensor(d) {
					sd, out.Key = d, k
					break
				}
			}
		}
		if out.Key == "" {
			return nil, nil, &FormatError{Path: name, Reason: fmt.Sprintf("holds a dict without tensors (keys: %s) and no state_dict under %s", keyList(top), strings.Join(candidateKeys, ", "))}
		}
	}
	refs := map[*storageRef][]view{}
	seen := map[string]bool{}
	for i, k := range sd.keys {
		ks, ok := k.(string)
		if !ok {
			return nil, nil, &FormatError{Path: name, Reason: fmt.Sprintf("state_dict key %v is %s, not a str", k, typeName(k))}
		}
		t, ok := sd.vals[i].(*tensorRef)
		if !ok {
			out.Skipped = append(out.Skipped, ks)
			continue
		}
		if strings.HasSuffix(ks, "num_batches_tracked") {
			out.Skipped = append(out.Skipped, ks)
			continue
		}
		if seen[ks] {
			return nil, nil, &FormatError{Path: name, Reason: fmt.Sprintf("tensor %q appears twice", ks)}
		}
		seen[ks] = true
		if err := t.check(); err != nil {
			return nil, nil, &FormatError{Path: name, Reason: fmt.Sprintf("tensor %q: %v", ks, err)}
		}
		dt := t.st.dtype
		out.Tensors = append(out.Tensors, Tensor{Name: ks, DType: dt, Shape: t.shape})
		refs[t.st] = append(refs[t.st], view{t: t, index: len(out.Tensors) - 1})
	}
	if len(out.Tensors) > 0 && allPrefixed(out.Tensors, "module.") {
		out.Prefix = "module."
		for i := range out.Tensors {
			out.Tensors[i].Name = strings.TrimPrefix(out.Tensors[i].Name, "module.")
		}
	}
	return out, refs, nil
}

func hasTensor(d *pyDict) bool {
	for _, v := range d.vals {
		if _, ok := v.(*tensorRef); ok {
			return true
		}
	}
	return false
}

func keyList(d *pyDict) string {
	var ks []string
	for _, k := range d.keys {
		ks = append(ks, fmt.Sprint(k))
	}
	if len(ks) > 10 {
		ks = append(ks[:10], "...")
	}
	return strings.Join(ks, ", ")
}

func allPrefixed(ts []Tensor, p string) bool {
	for _, t := range ts {
		if !strings.HasPrefix(t.Name, p) {
			return false
		}
	}
	return true
}

// view is a tensor of the output over a storage.
type view struct {
	t     *tensorRef
	index int // in File.Tensors
}

// check verifies that every element of the view lies inside its storage.
func (t *tensorRef) check() error {
	n := 1
	last := t.offset
	for i, d := range t.shape {
		if d == 0 {
			return nil
		}
		if n > math.MaxInt32*64/d {
			return fmt.Errorf("shape %v too large", t.shape)
		}
		n *= d
		last += (d - 1) * t.stride[i]
	}
	if last >= t.st.numel {
		return fmt.Errorf("shape %v, stride %v at offset %d reach past its storage of %d values", t.shape, t.stride, t.offset, t.st.numel)
	}
	if n > t.st.numel {
		// Only a broadcast (stride 0) view is larger than its storage.
		return fmt.Errorf("shape %v is a broadcast view of %d stored values (save it with .contiguous())", t.shape, t.st.numel)
	}
	return nil
}

func (t *tensorRef) numel() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// contiguous reports a row-major view without gaps.
func (t *tensorRef) contiguous() bool {
	want := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.stride[i] != want {
			return false
		}
		want *= t.shape[i]
	}
	return true
}

// storageOrder lists the storages in the order of their keys (zip entries and legacy
// data are written in that order for the files torch writes; any order works).
func storageOrder(refs map[*storageRef][]view) []*storageRef {
	out := make([]*storageRef, 0, len(refs))
	for st := range refs {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// fill reads the storage st (exactly its numel values, little-endian) from r into the
// tensors of out that view it.
func fill(r io.Reader, st *storageRef, views []view, out *File) error {
	es := dtypeSize[st.dtype]
	if len(views) == 1 && st.dtype == Float32 && views[0].t.contiguous() && nativeLittleEndian {
		// The usual case: read the bytes straight into the tensor.
		v := views[0]
		n := v.t.numel()
		data := make([]float32, n)
		if _, err := io.CopyN(io.Discard, r, int64(v.t.offset*es)); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, float32Bytes(data)); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, r, int64((st.numel-v.t.offset-n)*es)); err != nil {
			return err
		}
		out.Tensors[v.index].Data = data
		return nil
	}
	raw := make([]byte, st.numel*es)
	if _, err := io.ReadFull(r, raw); err != nil {
		return err
	}
	for _, v := range views {
		t := &out.Tensors[v.index]
		n := v.t.numel()
		if isFloat(st.dtype) {
			t.Data = make([]float32, n)
		} else {
			t.I64 = make([]int64, n)
		}
		idx := make([]int, len(v.t.shape))
		off := v.t.offset
		for i := 0; i < n; i++ {
			b := raw[off*es : off*es+es]
			if t.Data != nil {
				t.Data[i] = toFloat32(st.dtype, b)
			} else {
				t.I64[i] = toInt64(st.dtype, b)
			}
			// Advance the multi-index, last dimension fastest.
			for d := len(idx) - 1; d >= 0; d-- {
				idx[d]++
				off += v.t.stride[d]
				if idx[d] < v.t.shape[d] {
					break
				}
				off -= idx[d] * v.t.stride[d]
				idx[d] = 0
			}
		}
	}
	return nil
}

func isFloat(dt DType) bool {
	return slices.Contains([]DType{Float32, Float16, BFloat16, Float64}, dt)
}
