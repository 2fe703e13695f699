package pth

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzPickle runs the unpickler and the state_dict search on arbitrary bytes: they must
// return an error or a result, never panic, loop or allocate beyond the input's size.
// The seeds (testdata/fuzz/FuzzPickle) are the data.pkl of the fixtures.
func FuzzPickle(f *testing.F) {
	f.Add([]byte("\x80\x02}q\x00."))
	f.Fuzz(func(t *testing.T, data []byte) {
		storages := map[string]*storageRef{}
		persid := func(pid any) (any, error) {
			tp, ok := pid.(pyTuple)
			if !ok || len(tp) != 5 {
				return nil, pickleErr("not a storage")
			}
			g, ok1 := tp[1].(global)
			key, ok2 := tp[2].(string)
			n, ok3 := tp[4].(int64)
			if !ok1 || g.kind != gStorage || !ok2 || !ok3 || n < 0 {
				return nil, pickleErr("not a storage")
			}
			return storageFor(storages, key, g.dtype, n)
		}
		obj, err := newUnpickler(bytes.NewReader(data), int64(len(data)), "fuzz.pth", persid).load()
		if err != nil {
			var ge *GlobalError
			if !errors.Is(err, errPickle) && !errors.As(err, &ge) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		out, refs, err := stateDict(obj, "fuzz.pth")
		if err != nil {
			return
		}
		// Fill every storage with zeros: views must stay inside their storage.
		for st, views := range refs {
			if st.numel > 1<<20 {
				continue
			}
			zero := make([]byte, st.numel*dtypeSize[st.dtype])
			if err := fill(bytes.NewReader(zero), st, views, out); err != nil {
				t.Fatalf("fill: %v", err)
			}
		}
	})
}
