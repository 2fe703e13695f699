package pth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode"
)

// The Python objects a state_dict pickle builds. Nothing here runs Python code: every
// global the pickle names is looked up in allowed, and the few that a state_dict needs
// are implemented in Go.
type (
	pyList  struct{ items []any }
	pyTuple []any
	pyDict  struct {
		keys []any
		vals []any
		at   map[any]int // hashable keys (string, int64, bool, nil) → index
	}
	// global is an allow-listed name, as pushed by GLOBAL and STACK_GLOBAL.
	global struct {
		module, name string
		kind         globalKind
		dtype        DType // storage types
	}
	// storageRef is a persistent id: a storage whose bytes live outside the pickle.
	storageRef struct {
		key   string
		dtype DType
		numel int
	}
	// tensorRef is a strided view of a storage.
	tensorRef struct {
		st            *storageRef
		offset        int
		shape, stride []int
	}
	// bigInt is an integer too large for int64, kept as its little-endian bytes.
	bigInt []byte
	// inert is an instance of an allow-listed class that vggo does not need
	// (argparse.Namespace in a training checkpoint): it is kept, never called.
	inert struct{ class string }
)

func (d *pyDict) set(k, v any) {
	if d.at == nil {
		d.at = map[any]int{}
	}
	switch k.(type) {
	case string, int64, bool, nil, float64:
		if i, ok := d.at[k]; ok {
			d.vals[i] = v
			return
		}
		d.at[k] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *pyDict) get(k string) (any, bool) {
	i, ok := d.at[k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

type globalKind int

const (
	gOrderedDict globalKind = iota + 1
	gRebuildTensorV2
	gRebuildTensor
	gRebuildParameter
	gStorage
	gInert
)

// DType is a PyTorch storage element type.
type DType string

// The storage types a state_dict may hold. Float types are converted to float32; integer
// and bool tensors to int64.
const (
	Float32  DType = "float32"
	Float16  DType = "float16"
	BFloat16 DType = "bfloat16"
	Float64  DType = "float64"
	Int64    DType = "int64"
	Int32    DType = "int32"
	Int16    DType = "int16"
	Int8     DType = "int8"
	Uint8    DType = "uint8"
	Bool     DType = "bool"
)

var dtypeSize = map[DType]int{Float32: 4, Float16: 2, BFloat16: 2, Float64: 8, Int64: 8, Int32: 4, Int16: 2, Int8: 1, Uint8: 1, Bool: 1}

// allowed is every global a state_dict pickle may name: the whole allow-list. A pickle
// naming anything else is refused with a *GlobalError.
var allowed = map[string]global{
	"collections.OrderedDict":                    {kind: gOrderedDict},
	"torch._utils._rebuild_tensor_v2":            {kind: gRebuildTensorV2},
	"torch._utils._rebuild_tensor":               {kind: gRebuildTensor},
	"torch._utils._rebuild_parameter":            {kind: gRebuildParameter},
	"torch._utils._rebuild_parameter_with_state": {kind: gRebuildParameter},
	"torch.FloatStorage":                         {kind: gStorage, dtype: Float32},
	"torch.HalfStorage":                          {kind: gStorage, dtype: Float16},
	"torch.BFloat16Storage":                      {kind: gStorage, dtype: BFloat16},
	"torch.DoubleStorage":                        {kind: gStorage, dtype: Float64},
	"torch.LongStorage":                          {kind: gStorage, dtype: Int64},
	"torch.IntStorage":                           {kind: gStorage, dtype: Int32},
	"torch.ShortStorage":                         {kind: gStorage, dtype: Int16},
	"torch.CharStorage":                          {kind: gStorage, dtype: Int8},
	"torch.ByteStorage":                          {kind: gStorage, dtype: Uint8},
	"torch.BoolStorage":                          {kind: gStorage, dtype: Bool},
	// torchvision's reference scripts save their command line in the checkpoint.
	"argparse.Namespace": {kind: gInert},
}

// GlobalError reports a pickle that names a global outside the allow-list: a pickled
// object (torch.save(model)) or code. Nothing was called.
type GlobalError struct {
	Path         string
	Module, Name string
}

func (e *GlobalError) Error() string {
	full := e.Module + "." + e.Name
	if r := []rune(e.Name); len(r) > 0 && unicode.IsUpper(r[0]) {
		// A class: most likely torch.save(model) instead of torch.save(model.state_dict()).
		return fmt.Sprintf("pth: %s holds a pickled %s object, not a state_dict: re-save it with torch.save(model.state_dict(), ...)", e.Path, full)
	}
	return fmt.Sprintf("pth: %s: refusing the pickled global %s (a pickle can run code; vggo reads only the tensors, dicts, lists and numbers of a state_dict or training checkpoint)", e.Path, full)
}

// errPickle marks malformed pickle data; the reader wraps it in a *FormatError.
var errPickle = errors.New("malformed pickle")

func pickleErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errPickle}, args...)...)
}

// unpickler runs the subset of the pickle protocol (versions 2 to 5) that torch.save
// writes, without executing anything.
type unpickler struct {
	r      *bufio.Reader
	left   int64 // bytes the stream may still hold: bounds every length read from it
	stack  []any
	marks  []int
	memo   map[uint64]any
	path   string
	persid func(pid any) (any, error)
}

func newUnpickler(r io.Reader, size int64, path string, persid func(any) (any, error)) *unpickler {
	return &unpickler{r: bufio.NewReaderSize(r, 64<<10), left: size, memo: map[uint64]any{}, path: path, persid: persid}
}

func (u *unpickler) byte1() (byte, error) {
	if u.left < 1 {
		return 0, pickleErr("unexpected end of data")
	}
	b, err := u.r.ReadByte()
	if err != nil {
		return 0, readErr(err)
	}
	u.left--
	return b, nil
}

func readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return pickleErr("unexpected end of data")
	}
	return err
}

// bytesN reads n bytes, refusing a length the stream cannot hold before allocating.
func (u *unpickler) bytesN(n uint64) ([]byte, error) {
	if n > uint64(u.left) {
		return nil, pickleErr("a length of %d bytes runs past the end of the data", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(u.r, b); err != nil {
		return nil, readErr(err)
	}
	u.left -= int64(n)
	return b, nil
}

func (u *unpickler) uint(n int) (uint64, error) {
	b, err := u.bytesN(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) line() (string, error) {
	var b []byte
	for {
		c, err := u.byte1()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return string(b), nil
		}
		if len(b) > 1024 {
			return "", pickleErr("line longer than 1024 bytes")
		}
		b = append(b, c)
	}
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		return nil, pickleErr("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		return nil, pickleErr("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark pops everything above the last MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, pickleErr("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

// Opcodes of the pickle protocol (Python's Lib/pickle.py).
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opBinString      = 'T'
	opShortBinString = 'U'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opProto          = 0x80
	opNewObj         = 0x81
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opEmptySet       = 0x8f
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
)

// load runs the pickle to its STOP and returns the object it built.
func (u *unpickler) load() (any, error) {
	for {
		op, err := u.byte1()
		if err != nil {
			return nil, err
		}
		switch op {
		case opProto:
			v, err := u.byte1()
			if err != nil {
				return nil, err
			}
			if v < 2 || v > 5 {
				return nil, pickleErr("pickle protocol %d (torch.save writes 2; 2 to 5 are read)", v)
			}
		case opFrame:
			if _, err := u.uint(8); err != nil { // frames only group opcodes
				return nil, err
			}
		case opStop:
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		case opMark:
			u.marks = append(u.marks, len(u.stack))
		case opPop:
			if _, err := u.pop(); err != nil {
				return nil, err
			}
		case opPopMark:
			if _, err := u.popMark(); err != nil {
				return nil, err
			}
		case opDup:
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.push(v)
		case opNone:
			u.push(nil)
		case opNewTrue:
			u.push(true)
		case opNewFalse:
			u.push(false)
		case opBinInt:
			v, err := u.uint(4)
			if err != nil {
				return nil, err
			}
			u.push(int64(int32(uint32(v))))
		case opBinInt1:
			v, err := u.uint(1)
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case opBinInt2:
			v, err := u.uint(2)
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case opLong1, opLong4:
			var n uint64
			if op == opLong1 {
				n, err = u.uint(1)
			} else {
				n, err = u.uint(4)
			}
			if err != nil {
				return nil, err
			}
			b, err := u.bytesN(n)
			if err != nil {
				return nil, err
			}
			if len(b) > 8 {
				u.push(bigInt(b)) // legacy files start with a 10-byte magic number
				break
			}
			u.push(decodeLong(b))
		case opBinFloat:
			b, err := u.bytesN(8)
			if err != nil {
				return nil, err
			}
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		case opBinUnicode, opShortBinUni, opBinUnicode8, opBinString, opShortBinString:
			b, err := u.counted(op)
			if err != nil {
				return nil, err
			}
			u.push(string(b))
		case opBinBytes, opShortBinBytes, opBinBytes8:
			b, err := u.counted(op)
			if err != nil {
				return nil, err
			}
			u.push(b)
		case opEmptyDict:
			u.push(&pyDict{})
		case opEmptyList:
			u.push(&pyList{})
		case opEmptyTuple:
			u.push(pyTuple{})
		case opEmptySet:
			u.push(&pyList{}) // sets appear in optimizer state only; kept as lists
		case opTuple:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(pyTuple(items))
		case opTuple1, opTuple2, opTuple3:
			n := int(op-opTuple1) + 1
			t := make(pyTuple, n)
			for i := n - 1; i >= 0; i-- {
				if t[i], err = u.pop(); err != nil {
					return nil, err
				}
			}
			u.push(t)
		case opList:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(&pyList{items: items})
		case opDict:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if len(items)%2 != 0 {
				return nil, pickleErr("DICT with an odd number of items")
			}
			d := &pyDict{}
			for i := 0; i < len(items); i += 2 {
				d.set(items[i], items[i+1])
			}
			u.push(d)
		case opAppend:
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.appendTo([]any{v}); err != nil {
				return nil, err
			}
		case opAppends:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if err := u.appendTo(items); err != nil {
				return nil, err
			}
		case opSetItem:
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			k, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.setItems([]any{k, v}); err != nil {
				return nil, err
			}
		case opSetItems:
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if len(items)%2 != 0 {
				return nil, pickleErr("SETITEMS with an odd number of items")
			}
			if err := u.setItems(items); err != nil {
				return nil, err
			}
		case opBinPut, opLongBinPut, opMemoize:
			var k uint64
			switch op {
			case opBinPut:
				k, err = u.uint(1)
			case opLongBinPut:
				k, err = u.uint(4)
			default:
				k = uint64(len(u.memo))
			}
			if err != nil {
				return nil, err
			}
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.memo[k] = v
		case opBinGet, opLongBinGet:
			var k uint64
			if op == opBinGet {
				k, err = u.uint(1)
			} else {
				k, err = u.uint(4)
			}
			if err != nil {
				return nil, err
			}
			v, ok := u.memo[k]
			if !ok {
				return nil, pickleErr("memo entry %d read before it was written", k)
			}
			u.push(v)
		case opGlobal:
			module, err := u.line()
			if err != nil {
				return nil, err
			}
			name, err := u.line()
			if err != nil {
				return nil, err
			}
			g, err := u.global(module, name)
			if err != nil {
				return nil, err
			}
			u.push(g)
		case opStackGlobal:
			nv, err := u.pop()
			if err != nil {
				return nil, err
			}
			mv, err := u.pop()
			if err != nil {
				return nil, err
			}
			module, ok1 := mv.(string)
			name, ok2 := nv.(string)
			if !ok1 || !ok2 {
				return nil, pickleErr("STACK_GLOBAL needs two strings")
			}
			g, err := u.global(module, name)
			if err != nil {
				return nil, err
			}
			u.push(g)
		case opBinPersID:
			pid, err := u.pop()
			if err != nil {
				return nil, err
			}
			if u.persid == nil {
				return nil, pickleErr("persistent id outside a PyTorch file")
			}
			v, err := u.persid(pid)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case opReduce, opNewObj:
			args, err := u.pop()
			if err != nil {
				return nil, err
			}
			fn, err := u.pop()
			if err != nil {
				return nil, err
			}
			t, ok := args.(pyTuple)
			if !ok {
				return nil, pickleErr("REDUCE arguments are %s, not a tuple", typeName(args))
			}
			v, err := call(fn, t)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case opBuild:
			state, err := u.pop()
			if err != nil {
				return nil, err
			}
			obj, err := u.top()
			if err != nil {
				return nil, err
			}
			switch obj.(type) {
			case *pyDict, *tensorRef, *inert:
				// OrderedDict's _metadata, a Parameter's attributes, a Namespace's
				// fields: not needed.
				_ = state
			default:
				return nil, pickleErr("BUILD on %s", typeName(obj))
			}
		default:
			return nil, pickleErr("opcode 0x%02x is not read (not one torch.save writes for a state_dict)", op)
		}
	}
}

func (u *unpickler) global(module, name string) (global, error) {
	g, ok := allowed[module+"."+name]
	if !ok {
		return global{}, &GlobalError{Path: u.path, Module: module, Name: name}
	}
	g.module, g.name = module, name
	return g, nil
}

func (u *unpickler) appendTo(items []any) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	l, ok := v.(*pyList)
	if !ok {
		return pickleErr("APPEND to %s", typeName(v))
	}
	l.items = append(l.items, items...)
	return nil
}

func (u *unpickler) setItems(items []any) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	d, ok := v.(*pyDict)
	if !ok {
		return pickleErr("SETITEM on %s", typeName(v))
	}
	for i := 0; i < len(items); i += 2 {
		d.set(items[i], items[i+1])
	}
	return nil
}

// decodeLong decodes a little-endian two's-complement integer of at most 8 bytes.
func decodeLong(b []byte) int64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if shift := 64 - 8*len(b); shift > 0 && shift < 64 {
		return int64(v<<shift) >> shift // sign-extend
	}
	return int64(v)
}

// call applies an allow-listed global to its arguments, in Go.
func call(fn any, args pyTuple) (any, error) {
	g, ok := fn.(global)
	if !ok {
		return nil, pickleErr("call of %s", typeName(fn))
	}
	switch g.kind {
	case gOrderedDict:
		d := &pyDict{}
		if len(args) == 1 { // OrderedDict([(k, v), ...])
			l, ok := args[0].(*pyList)
			if !ok {
				return nil, pickleErr("OrderedDict of %s", typeName(args[0]))
			}
			for _, it := range l.items {
				kv, ok := it.(pyTuple)
				if !ok || len(kv) != 2 {
					return nil, pickleErr("OrderedDict item is not a pair")
				}
				d.set(kv[0], kv[1])
			}
		} else if len(args) != 0 {
			return nil, pickleErr("OrderedDict with %d arguments", len(args))
		}
		return d, nil
	case gRebuildTensorV2, gRebuildTensor:
		// (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
		if len(args) < 4 || len(args) > 7 {
			return nil, pickleErr("%s with %d arguments", g.module+"."+g.name, len(args))
		}
		st, ok := args[0].(*storageRef)
		if !ok {
			return nil, pickleErr("tensor over %s, not a storage", typeName(args[0]))
		}
		off, ok := args[1].(int64)
		if !ok || off < 0 {
			return nil, pickleErr("bad storage offset %v", args[1])
		}
		shape, err := ints(args[2], "size")
		if err != nil {
			return nil, err
		}
		stride, err := ints(args[3], "stride")
		if err != nil {
			return nil, err
		}
		if len(shape) != len(stride) {
			return nil, pickleErr("size %v and stride %v differ in length", shape, stride)
		}
		return &tensorRef{st: st, offset: int(off), shape: shape, stride: stride}, nil
	case gRebuildParameter:
		// (data, requires_grad, backward_hooks[, state])
		if len(args) < 1 {
			return nil, pickleErr("%s without arguments", g.name)
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return nil, pickleErr("parameter of %s", typeName(args[0]))
		}
		return t, nil
	case gInert:
		return &inert{class: g.module + "." + g.name}, nil
	}
	return nil, pickleErr("%s.%s is not callable", g.module, g.name)
}

// ints reads a tuple of non-negative ints (a size or a stride).
func ints(v any, what string) ([]int, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, pickleErr("tensor %s is %s, not a tuple", what, typeName(v))
	}
	if len(t) > 16 {
		return nil, pickleErr("tensor %s has %d dimensions", what, len(t))
	}
	out := make([]int, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 || n > math.MaxInt32 {
			return nil, pickleErr("tensor %s %v: want non-negative integers", what, t)
		}
		out[i] = int(n)
	}
	return out, nil
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int64:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a str"
	case []byte:
		return "bytes"
	case *pyList:
		return "a list"
	case pyTuple:
		return "a tuple"
	case *pyDict:
		return "a dict"
	case global:
		return v.module + "." + v.name
	case *storageRef:
		return "a storage"
	case *tensorRef:
		return "a tensor"
	case *inert:
		return "a " + v.class
	case bigInt:
		return "a big int"
	}
	return fmt.Sprintf("%T", v)
}

// counted reads the length-prefixed bytes of a string or bytes opcode: a 1-byte length
// for the SHORT_ forms, 8 bytes for the ...8 forms, 4 otherwise.
func (u *unpickler) counted(op byte) ([]byte, error) {
	width := 4
	switch op {
	case opShortBinUni, opShortBinString, opShortBinBytes:
		width = 1
	case opBinUnicode8, opBinBytes8:
		width = 8
	}
	n, err := u.uint(width)
	if err != nil {
		return nil, err
	}
	return u.bytesN(n)
}
