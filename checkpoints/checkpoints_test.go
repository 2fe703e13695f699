package checkpoints

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// specials are float32 bit patterns that a lossy path would disturb: quiet and
// signalling NaNs with payloads, -0, infinities, subnormals, extremes.
var specials = []uint32{
	0x7fc00001, // quiet NaN, payload 1
	0xffc12345, // negative quiet NaN with payload
	0x7f800001, // signalling NaN
	0x80000000, // -0
	0x00000000, // +0
	0x7f800000, // +Inf
	0xff800000, // -Inf
	0x00000001, // smallest subnormal
	0x807fffff, // largest negative subnormal
	0x7f7fffff, // max float32
	0x3f800000, // 1
}

func sampleFile() *File {
	w := make([]float32, len(specials))
	for i, b := range specials {
		w[i] = math.Float32frombits(b)
	}
	return &File{
		Tensors: []Tensor{
			{Name: "features.0.weight", Shape: []int{len(w), 1}, Data: w},
			{Name: "features.0.bias", Shape: []int{3}, Data: []float32{1.5, -2.25, 3}},
			{Name: "scalar", Shape: []int{}, Data: []float32{42}},
			{Name: "empty", Shape: []int{0, 3}, Data: []float32{}},
			{Name: "bn.num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{math.MinInt64 + 7}},
			{Name: "f64", DType: F64, Shape: []int{2}, F64: []float64{math.Float64frombits(0x7ff8000000000abc), math.Copysign(0, -1)}},
		},
		Metadata: map[string]string{"epoch": "3", "step": "120", "config": `{"lr":0.01,"tag":"<a&b>"}`},
	}
}

// equalFiles compares tensors bit for bit, in order, and the metadata.
func equalFiles(t *testing.T, got, want *File) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i := range want.Tensors {
		g, w := &got.Tensors[i], &want.Tensors[i]
		if g.Name != w.Name || g.DType.orF32() != w.DType.orF32() || !slices.Equal(g.Shape, w.Shape) {
			t.Errorf("tensor %d: got %s %s %v, want %s %s %v", i, g.Name, g.DType, g.Shape, w.Name, w.DType.orF32(), w.Shape)
			continue
		}
		if !bytes.Equal(rawBytes(g), rawBytes(w)) {
			t.Errorf("tensor %s: values differ: got %v, want %v", g.Name, rawBytes(g), rawBytes(w))
		}
	}
	for k, v := range want.Metadata {
		if got.Metadata[k] != v {
			t.Errorf("metadata %q: got %q, want %q", k, got.Metadata[k], v)
		}
	}
}

// rawBytes encodes a tensor's values little-endian through the portable path.
func rawBytes(t *Tensor) []byte {
	var out []byte
	encodeChunks(t, make([]byte, 24), func(b []byte) error {
		out = append(out, b...)
		return nil
	})
	return out
}

// saveRaw saves f even if it holds NaN or Inf (sampleFile's bit patterns).
func saveRaw(path string, f *File) error { return save(path, f, saveOptions{allowNonFinite: true}) }

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	f := sampleFile()
	if err := saveRaw(path, f); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Metadata[MetaChecksum]; ok {
		t.Error("Save modified the caller's metadata")
	}
	got, err := load(path, false)
	if err != nil {
		t.Fatal(err)
	}
	equalFiles(t, got, f)
	raw, _ := os.ReadFile(path)
	fromBytes, err := loadBytes(raw, path, false)
	if err != nil {
		t.Fatal(err)
	}
	equalFiles(t, fromBytes, f)
	if got.Metadata[MetaFormat] != FormatName || got.Metadata[MetaFormatVersion] != "2" || !strings.HasPrefix(got.Metadata[MetaChecksum], "crc32c:") {
		t.Errorf("format metadata: got %v", got.Metadata)
	}
	// A loaded file saves again (its stale checksum is replaced) to identical bytes.
	path2 := filepath.Join(t.TempDir(), "y.safetensors")
	if err := saveRaw(path2, got); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(path)
	b2, _ := os.ReadFile(path2)
	if !bytes.Equal(b1, b2) {
		t.Error("re-saving a loaded file changed its bytes")
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode: got %v, want 0644", st.Mode().Perm())
	}
}

func TestHeaderLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	f := sampleFile()
	if err := saveRaw(path, f); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	hdr := raw[8 : 8+n]
	if hdr[0] != '{' {
		t.Errorf("header starts with %q", hdr[0])
	}
	end := bytes.LastIndexByte(hdr, '}') + 1
	if strings.Trim(string(hdr[end:]), " ") != "" || len(hdr)-end >= 8 {
		t.Errorf("padding after the JSON is %q, want fewer than 8 spaces", hdr[end:])
	}
	var parsed map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &parsed); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	var md map[string]string
	if err := json.Unmarshal(parsed["__metadata__"], &md); err != nil {
		t.Fatalf("__metadata__ is not a string map: %v", err)
	}
	data := raw[8+n:]
	// The checksum covers the whole file, its own digits read as zeros.
	zeroed := bytes.Replace(raw, []byte(`"checksum":"`+md["checksum"]+`"`), []byte(`"checksum":"crc32c:00000000"`), 1)
	if want := fmt.Sprintf("crc32c:%08x", crc32.Checksum(zeroed, crc32.MakeTable(crc32.Castagnoli))); md["checksum"] != want {
		t.Errorf("checksum: got %q, want %q", md["checksum"], want)
	}
	// Offsets are contiguous from 0 in tensor order and cover the data section.
	var off uint64
	for _, tn := range f.Tensors {
		var e struct {
			DType       string   `json:"dtype"`
			Shape       []int    `json:"shape"`
			DataOffsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(parsed[tn.Name], &e); err != nil {
			t.Fatalf("%s: %v", tn.Name, err)
		}
		if e.DataOffsets[0] != off || e.Shape == nil {
			t.Errorf("%s: offsets %v, shape %v; want begin %d and a non-null shape", tn.Name, e.DataOffsets, e.Shape, off)
		}
		off = e.DataOffsets[1]
	}
	if off != uint64(len(data)) {
		t.Errorf("offsets end at %d, data section is %d bytes", off, len(data))
	}
}

// blob assembles a safetensors file by the spec: little-endian u64 header length,
// the header padded with spaces to pad bytes, the data.
func blob(header string, pad int, data []byte) []byte {
	h := header + strings.Repeat(" ", pad)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

func f32le(v ...float32) []byte {
	var out []byte
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

// TestReferenceBytes checks the encoder against files laid out as the reference
// implementation (huggingface/safetensors) serializes them without metadata: a 64-byte
// header that needs no padding, and a 65-byte one padded with 7 spaces.
func TestReferenceBytes(t *testing.T) {
	data := []float32{0, 1, 2, 3, 4, 5}
	for _, c := range []struct {
		name  string
		shape []int
		want  []byte
	}{
		{"attn.0", []int{1, 2, 3}, blob(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, 0, f32le(data...))},
		{"attn0", []int{1, 1, 2, 3}, blob(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}`, 7, f32le(data...))},
	} {
		tensors := []Tensor{{Name: c.name, Shape: c.shape, Data: data}}
		var buf bytes.Buffer
		if err := writeTo(&buf, encodeHeader(tensors, nil), tensors); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, buf.Bytes(), c.want)
		}
		path := filepath.Join(t.TempDir(), "ref.safetensors")
		os.WriteFile(path, c.want, 0o644)
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		equalFiles(t, got, &File{Tensors: tensors})
	}
}

// TestLoadForeign reads files as other tools write them: metadata from PyTorch, keys
// in any order, no padding, pretty-printed JSON, an int64 buffer, and no vggo checksum.
func TestLoadForeign(t *testing.T) {
	data := append(f32le(1.5, -2), binary.LittleEndian.AppendUint64(nil, 7)...)
	for name, b := range map[string][]byte{
		"torch":            blob(`{"__metadata__":{"format":"pt"},"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 0, data),
		"pretty":           blob("{\n  \"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},\n  \"bn.num_batches_tracked\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [8, 16]}\n}", 3, data),
		"foreign-checksum": blob(`{"__metadata__":{"checksum":"sha256:abc"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}`, 0, data),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.safetensors")
			os.WriteFile(path, b, 0o644)
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := &File{Tensors: []Tensor{
				{Name: "w", Shape: []int{2}, Data: []float32{1.5, -2}},
				{Name: "bn.num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{7}},
			}}
			equalFiles(t, got, want)
			w, ok := got.Tensor("w")
			if !ok || w.Data[1] != -2 {
				t.Errorf("Tensor(w): got %v, %v", w, ok)
			}
		})
	}
}

func TestChunkedPath(t *testing.T) {
	f := sampleFile()
	for i := range f.Tensors {
		tn := &f.Tensors[i]
		enc := rawBytes(tn) // 24-byte scratch: many chunks
		if view := tn.bytes(); view != nil && !bytes.Equal(view, enc) {
			t.Errorf("%s: chunked encoding differs from the memory view", tn.Name)
		}
		back := Tensor{Name: tn.Name, DType: tn.DType.orF32(), Shape: tn.Shape}
		switch back.DType {
		case F32:
			back.Data = make([]float32, len(tn.Data))
		case F64:
			back.F64 = make([]float64, len(tn.F64))
		case I64:
			back.I64 = make([]int64, len(tn.I64))
		}
		var sum uint32
		if err := decodeChunks(bytes.NewReader(enc), &back, make([]byte, 16), &sum); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rawBytes(&back), enc) || sum != crc32.Update(0, castagnoli, enc) {
			t.Errorf("%s: chunked decoding does not round-trip", tn.Name)
		}
	}
}

func writeBlob(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := saveRaw(path, sampleFile()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	n := int(binary.LittleEndian.Uint64(raw))
	for _, cut := range []int{0, 1, 7, 8, 9, 8 + n/2, 8 + n - 1, 8 + n, 8 + n + 1, 8 + n + 5, len(raw) - 1} {
		p := writeBlob(t, raw[:cut])
		_, err := Load(p)
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || fe.Path != p {
			t.Errorf("cut at %d of %d: got %v, want a *FormatError wrapping ErrTruncated naming the file", cut, len(raw), err)
		}
		_, err = LoadBytes(raw[:cut], "rank0:x.safetensors")
		if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || fe.Path != "rank0:x.safetensors" {
			t.Errorf("LoadBytes, cut at %d of %d: got %v, want a *FormatError wrapping ErrTruncated naming the file", cut, len(raw), err)
		}
	}
}

func TestLoadChecksum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := saveRaw(path, sampleFile()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	n := int(binary.LittleEndian.Uint64(raw))
	for _, at := range []int{8 + n, 8 + n + 13, len(raw) - 1} {
		bad := slices.Clone(raw)
		bad[at] ^= 0x10
		_, err := Load(writeBlob(t, bad))
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("flip at %d: got %v, want ErrChecksum", at, err)
		}
	}
	// Inspect reads only the header, so it does not notice.
	bad := slices.Clone(raw)
	bad[len(raw)-1] ^= 1
	if _, err := Inspect(writeBlob(t, bad)); err != nil {
		t.Errorf("Inspect: %v", err)
	}
}

// finiteFile is a small checkpoint with finite values and a config in its metadata.
func finiteFile() *File {
	return &File{
		Tensors: []Tensor{
			{Name: "encoder.0.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-3, -7}},
			{Name: "optim.encoder.0.weight.m", Shape: []int{2, 3}, Data: []float32{0.5, 0.25, 0, 0, -1, 2}},
			{Name: "optim.step", DType: I64, Shape: []int{}, I64: []int64{42}},
		},
		Metadata: map[string]string{"vggo.config": `{"model":"vgg16-segnet","lr":0.01}`, "epoch": "3"},
	}
}

func TestLoadHeaderCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Save(path, finiteFile()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	n := int(binary.LittleEndian.Uint64(raw))
	// The probe's cases: a flip inside the stored config, in an optimizer tensor's
	// name, in the data. Each still parses, so only the checksum can refuse them.
	for _, c := range []struct{ name, find, flipped string }{
		{"config", `vgg16-segnet`, `vgg16-segnes`},
		{"tensor name", `"optim.encoder.0.weight.m"`, `"optim.encoder.1.weight.m"`},
		{"epoch", `"epoch":"3"`, `"epoch":"7"`},
		{"shape", `"shape":[2,3]`, `"shape":[3,2]`},
	} {
		bad := bytes.Replace(raw, []byte(c.find), []byte(c.flipped), 1)
		if bytes.Equal(bad, raw) {
			t.Fatalf("%s: %q not found in the header", c.name, c.find)
		}
		p := writeBlob(t, bad)
		_, err := Load(p)
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrChecksum) || fe.Path != p || !strings.Contains(err.Error(), "the header and data hash to") {
			t.Errorf("flip in the %s: got %v, want ErrChecksum naming the file", c.name, err)
		}
		if _, err := LoadBytes(bad, "rank0:x"); !errors.Is(err, ErrChecksum) {
			t.Errorf("LoadBytes, flip in the %s: got %v, want ErrChecksum", c.name, err)
		}
	}
	// Every single-bit flip anywhere in the length prefix, the header or the data is
	// refused with a *FormatError naming the file (by the checksum, or earlier by the
	// parser). A few bits per byte keep the test fast.
	p := filepath.Join(t.TempDir(), "flip.safetensors")
	for at := range raw {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			bad := slices.Clone(raw)
			bad[at] ^= bit
			os.WriteFile(p, bad, 0o644)
			_, err := Load(p)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Path != p {
				where := "data"
				if at < 8+n {
					where = fmt.Sprintf("header %q", raw[max(at-10, 0):min(at+10, 8+n)])
				}
				t.Fatalf("flip 0x%02x at byte %d (%s): got %v, want a *FormatError naming the file", bit, at, where, err)
			}
		}
	}
}

func TestLoadFormatVersion1(t *testing.T) {
	// testdata/v1.safetensors was written by the format-1 code (checksum over the
	// data section only); it must keep loading.
	const path = "testdata/v1.safetensors"
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata[MetaFormatVersion] != "1" || f.Metadata["vggo.config"] != `{"model":"vgg11","lr":0.01}` {
		t.Errorf("metadata: %v", f.Metadata)
	}
	w, _ := f.Tensor("features.0.weight")
	s, _ := f.Tensor("optim.step")
	if w == nil || !slices.Equal(w.Data, []float32{1, -2, 3.5, 0, 1e-3, -7}) || s == nil || s.I64[0] != 42 {
		t.Errorf("tensors: %v", f.Specs())
	}
	// Its data is still verified.
	raw, _ := os.ReadFile(path)
	bad := slices.Clone(raw)
	bad[len(bad)-3] ^= 0x04
	if _, err := Load(writeBlob(t, bad)); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "the data hashes to") {
		t.Errorf("data flip in a format-1 file: got %v, want ErrChecksum", err)
	}
	// Saved again, it becomes format 2.
	out := filepath.Join(t.TempDir(), "v2.safetensors")
	if err := Save(out, f); err != nil {
		t.Fatal(err)
	}
	if g, err := Load(out); err != nil || g.Metadata[MetaFormatVersion] != "2" {
		t.Errorf("re-saved: %v, %v", g.Metadata, err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	d8 := f32le(1, 2)
	vggo := func(md string) []byte {
		return blob(`{"__metadata__":{`+md+`},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 0, d8)
	}
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"huge header length", append(huge, `{}`...), "beyond the 100 MB limit"},
		{"bad json", blob(`{"w":{"dtype":"F32","shape":[2],`, 0, nil), "invalid header"},
		{"not an object", blob(`[1,2]`, 0, nil), "does not start with '{'"},
		{"garbage after object", blob(`{}x`, 0, nil), "after the JSON object"},
		{"not utf8", blob("{\"\xff\":1}", 0, nil), "UTF-8"},
		{"duplicate key", blob(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 0, d8), "appears twice"},
		{"metadata not strings", blob(`{"__metadata__":{"epoch":3}}`, 0, nil), "not a string"},
		{"no dtype", blob(`{"w":{"shape":[2],"data_offsets":[0,8]}}`, 0, d8), "no dtype"},
		{"no shape", blob(`{"w":{"dtype":"F32","data_offsets":[0,8]}}`, 0, d8), "no shape"},
		{"three offsets", blob(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, 0, d8), "[begin, end]"},
		{"negative dim", blob(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 0, d8), `tensor "w"`},
		{"unknown dtype", blob(`{"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, 0, d8), "unknown dtype"},
		{"unsupported dtype", blob(`{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}`, 0, d8), "does not read"},
		{"size disagrees with shape", blob(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 0, d8), "needs 12"},
		{"shape overflow", blob(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 0, d8), "more than 2^64"},
		{"end before begin", blob(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 0, d8), "end before they begin"},
		{"overlap", blob(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 0, d8), "overlap"},
		{"gap", blob(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 0, d8), "gap of 4 bytes"},
		{"trailing bytes", blob(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 0, d8), "4 trailing bytes"},
		{"out of range", blob(`{"w":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}}`, 0, d8), "cut short"},
		{"vggo without checksum", vggo(`"format":"vggo-checkpoint","format_version":"1"`), "without a crc32c checksum"},
		{"vggo malformed checksum", vggo(`"format":"vggo-checkpoint","format_version":"1","checksum":"crc32c:xyz"`), "malformed checksum"},
		{"vggo newer version", vggo(`"format":"vggo-checkpoint","format_version":"3","checksum":"crc32c:00000000"`), "upgrade vggo"},
		{"vggo bad version", vggo(`"format":"vggo-checkpoint","format_version":"one"`), "not a positive integer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeBlob(t, c.b)
			_, err := Load(p)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Path != p || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "checkpoints: "+p+": ") {
				t.Errorf("got %v, want a *FormatError naming the file and saying %q", err, c.want)
			}
		})
	}
}

func TestLoadNotAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "nope.safetensors")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.safetensors") {
		t.Errorf("missing file: got %v, want fs.ErrNotExist naming the file", err)
	}
	var fe *FormatError
	if _, err := Load(dir); !errors.As(err, &fe) {
		t.Errorf("directory: got %v, want *FormatError", err)
	}
}

func TestInspect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	f := sampleFile()
	if err := saveRaw(path, f); err != nil {
		t.Fatal(err)
	}
	h, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	want := f.Specs()
	if len(h.Specs) != len(want) || h.Metadata["epoch"] != "3" {
		t.Fatalf("got %v %v", h.Specs, h.Metadata)
	}
	for i := range want {
		if h.Specs[i].String() != want[i].String() {
			t.Errorf("spec %d: got %s, want %s", i, h.Specs[i], want[i])
		}
	}
	// Inspect lists dtypes that Load refuses.
	p := writeBlob(t, blob(`{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}`, 0, f32le(1, 2)))
	if h, err := Inspect(p); err != nil || h.Specs[0].DType != "BF16" {
		t.Errorf("Inspect BF16: got %v, %v", h, err)
	}
}

// failWriter accepts left bytes, then fails.
type failWriter struct {
	w    io.Writer
	left int
}

var errInjected = errors.New("injected write failure")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n, _ := f.w.Write(p[:f.left])
		f.left = 0
		return n, errInjected
	}
	f.left -= len(p)
	return f.w.Write(p)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "last.safetensors")
	old := &File{Tensors: []Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}}
	if err := Save(path, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	big := &File{Tensors: []Tensor{{Name: "w", Shape: []int{3000}, Data: make([]float32, 3000)}}}
	for _, left := range []int{0, 3, 8, 20, 5000, 12000} {
		err := save(path, big, saveOptions{wrap: func(w io.Writer) io.Writer { return &failWriter{w: w, left: left} }})
		if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), path) {
			t.Errorf("fail after %d bytes: got %v, want the injected error naming the file", left, err)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Errorf("fail after %d bytes: the previous file changed", left)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"last.safetensors"}) {
			t.Errorf("fail after %d bytes: directory holds %v, want only last.safetensors", left, names)
		}
	}
	if _, err := Load(path); err != nil {
		t.Errorf("previous file no longer loads: %v", err)
	}

	// The rename fails when the target is a non-empty directory: nothing is left behind.
	target := filepath.Join(dir, "sub.safetensors")
	os.MkdirAll(filepath.Join(target, "x"), 0o755)
	if err := Save(target, old); err == nil {
		t.Error("Save over a directory succeeded")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"last.safetensors", "sub.safetensors"}) {
		t.Errorf("after a failed rename the directory holds %v", names)
	}
	if err := Save(filepath.Join(dir, "missing", "x.safetensors"), old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("save into a missing directory: got %v, want fs.ErrNotExist", err)
	}
}

func TestSaveInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		f    *File
		want string
	}{
		{"empty name", &File{Tensors: []Tensor{{Shape: []int{1}, Data: []float32{1}}}}, "empty name"},
		{"reserved name", &File{Tensors: []Tensor{{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}}}, "reserves"},
		{"duplicate", &File{Tensors: []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}}, "appears twice"},
		{"shape mismatch", &File{Tensors: []Tensor{{Name: "a", Shape: []int{2, 2}, Data: []float32{1}}}}, "shape [2 2] holds 4 values, but the F32 data has 1"},
		{"negative dim", &File{Tensors: []Tensor{{Name: "a", Shape: []int{-1}, Data: []float32{}}}}, "negative"},
		{"unknown dtype", &File{Tensors: []Tensor{{Name: "a", DType: "BF16", Shape: []int{0}}}}, "cannot be written"},
		{"two slices", &File{Tensors: []Tensor{{Name: "a", DType: I64, Shape: []int{1}, I64: []int64{1}, Data: []float32{1}}}}, "set only the one"},
		{"bad utf8", &File{Tensors: []Tensor{{Name: "a\xff", Shape: []int{1}, Data: []float32{1}}}}, "UTF-8"},
		{"bad utf8 metadata", &File{Metadata: map[string]string{"k": "\xff"}}, "UTF-8"},
	} {
		path := filepath.Join(dir, "x.safetensors")
		err := Save(path, c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "checkpoints: save "+path) {
			t.Errorf("%s: got %v, want an error naming the file and saying %q", c.name, err, c.want)
		}
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("invalid saves left %v", names)
	}
}

func TestFilter(t *testing.T) {
	f := sampleFile()
	g := f.Filter(func(name string) bool { return strings.HasPrefix(name, "features.") })
	if len(g.Tensors) != 2 || g.Tensors[0].Name != "features.0.weight" || g.Metadata["epoch"] != "3" {
		t.Errorf("got %v", g.Specs())
	}
	g.Metadata["epoch"] = "9"
	if f.Metadata["epoch"] != "3" {
		t.Error("Filter shares the metadata map")
	}
}
