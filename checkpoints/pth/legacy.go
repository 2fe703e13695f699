package pth

import (
	"encoding/binary"
	"fmt"
	"io"
)

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readLegacy reads the format of torch < 1.6 (and torch.save(...,
// _use_new_zipfile_serialization=False)): five pickles in a row (magic number,
// protocol version, system info, the object, the list of storage keys), then each
// storage as an 8-byte little-endian element count and its raw values, in the order of
// the keys.
func readLegacy(r io.ReaderAt, size int64, name string, opt Options) (*File, error) {
	var pos int64
	next := func(persid func(any) (any, error)) (any, error) {
		c := &counter{r: io.NewSectionReader(r, pos, size-pos)}
		u := newUnpickler(c, size-pos, name, persid)
		v, err := u.load()
		pos += c.n - int64(u.r.Buffered())
		return v, err
	}
	for i, want := range []string{"magic number", "protocol version", "system info"} {
		v, err := next(nil)
		if err != nil {
			return nil, wrapPickle(name, "legacy "+want, err)
		}
		if i == 1 {
			if n, ok := v.(int64); !ok || n != 1001 {
				return nil, &FormatError{Path: name, Reason: fmt.Sprintf("legacy protocol version %v (vggo reads 1001)", v)}
			}
		}
		if i == 2 {
			if d, ok := v.(*pyDict); ok {
				if le, ok := d.get("little_endian"); ok && le != true {
					return nil, &FormatError{Path: name, Reason: "written on a big-endian machine: vggo reads little-endian files only"}
				}
			}
		}
	}
	storages := map[string]*storageRef{}
	persid := func(pid any) (any, error) {
		// ('storage', storage_type, root_key, location, numel, view_metadata)
		t, ok := pid.(pyTuple)
		if !ok || len(t) != 6 || t[0] != "storage" {
			if ok && len(t) > 0 && t[0] == "module" {
				return nil, &FormatError{Path: name, Reason: "holds a pickled module, not a state_dict: re-save it with torch.save(model.state_dict(), ...)"}
			}
			return nil, pickleErr("persistent id %s is not a storage", typeName(pid))
		}
		g, ok1 := t[1].(global)
		key, ok2 := t[2].(string)
		numel, ok3 := t[4].(int64)
		if !ok1 || g.kind != gStorage || !ok2 || !ok3 || numel < 0 {
			return nil, pickleErr("malformed storage id %v", t)
		}
		if t[5] != nil {
			return nil, &FormatError{Path: name, Reason: "a legacy file with storage views, which vggo does not read: load it in torch >= 1.6 and re-save it with torch.save(state_dict, path)"}
		}
		return storageFor(storages, key, g.dtype, numel)
	}
	obj, err := next(persid)
	if err != nil {
		return nil, wrapPickle(name, "legacy pickle", err)
	}
	out, refs, err := stateDict(obj, name)
	if err != nil {
		return nil, err
	}
	out.Format = "legacy"
	keysObj, err := next(nil)
	if err != nil {
		return nil, wrapPickle(name, "legacy storage list", err)
	}
	kl, ok := keysObj.(*pyList)
	if !ok {
		return nil, &FormatError{Path: name, Reason: "legacy storage list is " + typeName(keysObj)}
	}
	if opt.NoData {
		return out, nil
	}
	for _, k := range kl.items {
		key, ok := k.(string)
		st := storages[key]
		if !ok || st == nil {
			return nil, &FormatError{Path: name, Reason: fmt.Sprintf("legacy storage list names %v, which the pickle does not use", k)}
		}
		var nb [8]byte
		if _, err := r.ReadAt(nb[:], pos); err != nil {
			return nil, &FormatError{Path: name, Err: ErrTruncated, Reason: fmt.Sprintf("storage %s: the file ends early", key)}
		}
		pos += 8
		if n := int64(binary.LittleEndian.Uint64(nb[:])); n != int64(st.numel) {
			return nil, &FormatError{Path: name, Err: ErrCorrupt, Reason: fmt.Sprintf("storage %s holds %d values, the pickle declares %d", key, n, st.numel)}
		}
		nbytes := int64(st.numel) * int64(dtypeSize[st.dtype])
		if pos+nbytes > size {
			return nil, &FormatError{Path: name, Err: ErrTruncated, Reason: fmt.Sprintf("storage %s: the file ends early", key)}
		}
		if views := refs[st]; views != nil {
			if err := fill(io.NewSectionReader(r, pos, nbytes), st, views, out); err != nil {
				return nil, &FormatError{Path: name, Err: ErrTruncated, Reason: fmt.Sprintf("storage %s: %v", key, err)}
			}
		}
		pos += nbytes
	}
	for st := range refs {
		if out.Tensors[refs[st][0].index].Data == nil && out.Tensors[refs[st][0].index].I64 == nil && refs[st][0].t.numel() > 0 {
			return nil, &FormatError{Path: name, Reason: fmt.Sprintf("storage %s is missing from the legacy storage list", st.key)}
		}
	}
	return out, nil
}
