package checkpoints

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/vggo/vggo/checkpoints/pth"
)

// Metadata that Load sets on a File read from a PyTorch file (.pth, .pt).
const (
	// MetaSourceFormat is "pytorch-zip" (torch >= 1.6) or "pytorch-legacy".
	MetaSourceFormat = "source_format"
	// MetaStateDictKey names the entry of a training-checkpoint dict ({"model": ...,
	// "optimizer": ...}) that held the weights; absent when the file is a state_dict.
	MetaStateDictKey = "pytorch.state_dict_key"
	// MetaStrippedPrefix is a prefix removed from every name ("module." of DataParallel).
	MetaStrippedPrefix = "pytorch.stripped_prefix"
	// MetaSkipped counts entries not returned: num_batches_tracked, non-tensor values.
	MetaSkipped = "pytorch.skipped"
)

// isPyTorch tells a PyTorch file from a safetensors file by its first bytes.
func isPyTorch(head []byte) bool { return pth.Sniff(head) != "" }

// loadPyTorch reads a PyTorch file through package pth and checks it as Load does.
func loadPyTorch(r io.ReaderAt, size int64, path string, checkFinite bool) (*File, error) {
	pf, err := pth.Read(r, size, path, pth.Options{})
	if err != nil {
		return nil, err
	}
	f := fromPTH(pf)
	if checkFinite {
		if err := CheckFinite(f.Tensors); err != nil {
			nf := err.(*NonFiniteError)
			nf.Op, nf.Path = "load", path
			return nil, nf
		}
	}
	return f, nil
}

func fromPTH(pf *pth.File) *File {
	f := &File{Tensors: make([]Tensor, len(pf.Tensors)), Metadata: map[string]string{MetaSourceFormat: "pytorch-" + pf.Format}}
	for i, t := range pf.Tensors {
		ct := Tensor{Name: t.Name, Shape: t.Shape, DType: F32, Data: t.Data}
		if t.I64 != nil || (t.Data == nil && !isFloatDType(t.DType)) {
			ct.DType, ct.Data, ct.I64 = I64, nil, t.I64
		}
		f.Tensors[i] = ct
	}
	if pf.Key != "" {
		f.Metadata[MetaStateDictKey] = pf.Key
	}
	if pf.Prefix != "" {
		f.Metadata[MetaStrippedPrefix] = pf.Prefix
	}
	if len(pf.Skipped) > 0 {
		f.Metadata[MetaSkipped] = strconv.Itoa(len(pf.Skipped))
	}
	return f
}

func isFloatDType(d pth.DType) bool {
	switch d {
	case pth.Float32, pth.Float16, pth.BFloat16, pth.Float64:
		return true
	}
	return false
}

// Source describes where the tensors of a loaded File came from, for messages: "" for
// a safetensors file, else e.g. `PyTorch zip file, state_dict under "model"`.
func (f *File) Source() string {
	src := f.Metadata[MetaSourceFormat]
	if !strings.HasPrefix(src, "pytorch-") {
		return ""
	}
	s := "PyTorch " + strings.TrimPrefix(src, "pytorch-") + " file"
	if k := f.Metadata[MetaStateDictKey]; k != "" {
		s += fmt.Sprintf(", state_dict under %q", k)
	}
	if p := f.Metadata[MetaStrippedPrefix]; p != "" {
		s += fmt.Sprintf(", prefix %q removed", p)
	}
	return s
}

// inspectPyTorch is Inspect for a PyTorch file: the pickle only, no tensor data.
func inspectPyTorch(fh *os.File, path string) (*Header, error) {
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoints: inspect: %w", err)
	}
	pf, err := pth.Read(fh, st.Size(), path, pth.Options{NoData: true})
	if err != nil {
		return nil, err
	}
	f := fromPTH(pf)
	return &Header{Specs: f.Specs(), Metadata: f.Metadata}, nil
}

// sniff returns the first bytes of fh for format detection; on a read error, what it
// got (the safetensors reader then reports the problem).
func sniff(fh *os.File) []byte {
	head := make([]byte, 512)
	n, _ := fh.ReadAt(head, 0)
	return head[:n]
}

// sniffBytes is sniff for a file in memory.
func sniffBytes(b []byte) []byte { return b[:min(len(b), 512)] }
