package data

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vggo/vggo/label"
)

// copyBatch deep-copies a batch (the loader reuses its buffers).
func copyBatch(b *Batch) Batch {
	c := *b
	c.Images = slices.Clone(b.Images)
	c.Labels = slices.Clone(b.Labels)
	c.IDs = slices.Clone(b.IDs)
	c.Indices = slices.Clone(b.Indices)
	c.Sizes = slices.Clone(b.Sizes)
	return c
}

func collect(t *testing.T, l *Loader, epoch, start int) []Batch {
	t.Helper()
	var out []Batch
	for b, err := range l.Epoch(context.Background(), epoch, start) {
		if err != nil {
			t.Fatalf("epoch %d from %d: %v", epoch, start, err)
		}
		out = append(out, copyBatch(b))
	}
	return out
}

func newLoader(t *testing.T, ds Dataset, tf Transform, cfg Config) *Loader {
	t.Helper()
	l, err := NewLoader(ds, tf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var trainTF = Transform{Train: true, CropH: 16, CropW: 24}

// TestLoaderDeterminism: 1 worker and 3 workers (and different prefetch depths)
// give bit-identical batches, epoch after epoch.
func TestLoaderDeterminism(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 23}
	cfg := Config{BatchSize: 4, Workers: 1, Prefetch: 1, Seed: 42, Shuffle: true, DropLast: true}
	one := newLoader(t, ds, trainTF, cfg)
	cfg.Workers, cfg.Prefetch = 3, 4
	three := newLoader(t, ds, trainTF, cfg)
	if one.StepsPerEpoch() != 5 {
		t.Fatalf("got %d steps, want 5", one.StepsPerEpoch())
	}
	var first []Batch
	for epoch := range 2 {
		a, b := collect(t, one, epoch, 0), collect(t, three, epoch, 0)
		if len(a) != 5 || !reflect.DeepEqual(a, b) {
			t.Fatalf("epoch %d: 1 and 3 workers differ (%d and %d batches)", epoch, len(a), len(b))
		}
		if again := collect(t, three, epoch, 0); !reflect.DeepEqual(a, again) {
			t.Fatalf("epoch %d: a second pass differs", epoch)
		}
		if epoch == 0 {
			first = a
		} else if reflect.DeepEqual(first[0].Indices, a[0].Indices) {
			t.Error("epochs 0 and 1 have the same order")
		}
		for _, bt := range a {
			if bt.N != 4 || bt.H != 16 || bt.W != 24 || len(bt.Images) != 4*3*16*24 || len(bt.Labels) != 4*16*24 {
				t.Fatalf("got batch N %d %dx%d, %d images, %d labels", bt.N, bt.H, bt.W, len(bt.Images), len(bt.Labels))
			}
		}
	}
	// Another seed, other batches.
	cfg.Seed = 43
	other := newLoader(t, ds, trainTF, cfg)
	if reflect.DeepEqual(collect(t, other, 0, 0), first) {
		t.Error("seeds 42 and 43 give the same batches")
	}
}

// TestLoaderResume: starting at step k gives the batches k.. of a full epoch.
func TestLoaderResume(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 19}
	l := newLoader(t, ds, trainTF, Config{BatchSize: 3, Workers: 2, Seed: 7, Shuffle: true, DropLast: true})
	full := collect(t, l, 3, 0)
	for k := range l.StepsPerEpoch() + 1 {
		got := collect(t, l, 3, k)
		if len(got) != len(full[k:]) || len(got) > 0 && !reflect.DeepEqual(got, full[k:]) {
			t.Fatalf("start at step %d: got %d batches that differ from the full epoch's", k, len(got))
		}
		if k < len(full) && got[0].Step != k {
			t.Errorf("got step %d, want %d", got[0].Step, k)
		}
	}
	for b, err := range l.Epoch(context.Background(), 0, 99) {
		if b != nil || err == nil || !strings.Contains(err.Error(), "start step 99") {
			t.Errorf("start step 99: got %v, %v", b, err)
		}
	}
}

// TestLoaderShards: the shards of a data-parallel run, concatenated, are the batches of
// one unsharded loader (the same samples, augmentation and order), from any start step.
func TestLoaderShards(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 26}
	cfg := Config{BatchSize: 6, Workers: 2, Seed: 5, Shuffle: true, DropLast: true}
	full := collect(t, newLoader(t, ds, trainTF, cfg), 1, 1)
	for _, k := range []int{2, 3} {
		parts := make([][]Batch, k)
		for r := range k {
			c := cfg
			c.Shard, c.Shards = r, k
			parts[r] = collect(t, newLoader(t, ds, trainTF, c), 1, 1)
		}
		if len(parts[0]) != len(full) {
			t.Fatalf("%d shards: %d batches, want %d", k, len(parts[0]), len(full))
		}
		for s, want := range full {
			var got Batch
			for r := range k {
				p := parts[r][s]
				if p.N != 6/k || p.Step != want.Step {
					t.Fatalf("%d shards, shard %d step %d: N %d step %d", k, r, s, p.N, p.Step)
				}
				got.Images = append(got.Images, p.Images...)
				got.Labels = append(got.Labels, p.Labels...)
				got.IDs = append(got.IDs, p.IDs...)
				got.Indices = append(got.Indices, p.Indices...)
			}
			if !reflect.DeepEqual(got.Images, want.Images) || !reflect.DeepEqual(got.Labels, want.Labels) ||
				!reflect.DeepEqual(got.IDs, want.IDs) || !reflect.DeepEqual(got.Indices, want.Indices) {
				t.Fatalf("%d shards, step %d: the shards together differ from the unsharded batch", k, s)
			}
		}
	}
}

// TestLoaderOrder: each epoch visits every sample once (minus the dropped tail).
func TestLoaderOrder(t *testing.T) {
	ds := &memDataset{task: label.Classification, n: 10}
	l := newLoader(t, ds, Transform{CropH: 4, CropW: 4}, Config{BatchSize: 4, Shuffle: true})
	if l.StepsPerEpoch() != 3 {
		t.Fatalf("got %d steps, want 3 (the last batch kept)", l.StepsPerEpoch())
	}
	var seen []int
	for _, b := range collect(t, l, 0, 0) {
		seen = append(seen, b.Indices...)
		for i, idx := range b.Indices {
			if b.Labels[i] != idx%3 || b.IDs[i] != idOf(idx) {
				t.Errorf("sample %d: got label %d id %s", idx, b.Labels[i], b.IDs[i])
			}
		}
		if len(b.Labels) != b.N || len(b.Images) != b.N*3*4*4 {
			t.Errorf("got %d labels, %d floats for N=%d", len(b.Labels), len(b.Images), b.N)
		}
	}
	if !reflect.DeepEqual(seen, l.Order(0)) {
		t.Errorf("got %v, want Order(0) %v", seen, l.Order(0))
	}
	slices.Sort(seen)
	if !reflect.DeepEqual(seen, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("got %v, want each index once", seen)
	}
}

// TestLoaderEvalBatches: segmentation evaluation pads each batch to its largest
// H, W rounded up to the stride; padding is 0 / 255; sizes and ids are recorded.
func TestLoaderEvalBatches(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 7}
	tf := Transform{Stride: 8}
	l := newLoader(t, ds, tf, Config{BatchSize: 3, Workers: 2})
	tr := mustTransformer(t, tf, label.Segmentation)
	batches := collect(t, l, 0, 0)
	if len(batches) != 3 || batches[2].N != 1 {
		t.Fatalf("got %d batches, want 3, the last of 1", len(batches))
	}
	for _, b := range batches {
		mh, mw := 0, 0
		for i, idx := range b.Indices {
			ex, _ := ds.Load(idx)
			h, w := ex.Image.Rect.Dy(), ex.Image.Rect.Dx()
			if b.Sizes[i] != [2]int{h, w} || b.IDs[i] != ex.ID {
				t.Errorf("sample %d: got size %v id %s, want %v %s", idx, b.Sizes[i], b.IDs[i], [2]int{h, w}, ex.ID)
			}
			mh, mw = max(mh, h), max(mw, w)
			plane := b.H * b.W
			for y := range b.H {
				for x := range b.W {
					wantL, wantG := label.Ignore, float32(0)
					if x < w && y < h {
						wantL, wantG = int(ex.Mask.GrayAt(x, y).Y), tr.lut[1][ex.Image.RGBAAt(x, y).G]
					}
					if got := b.Labels[i*plane+y*b.W+x]; got != wantL {
						t.Fatalf("sample %d (%d,%d): got label %d, want %d", idx, x, y, got, wantL)
					}
					if got := b.Images[(3*i+1)*plane+y*b.W+x]; got != wantG {
						t.Fatalf("sample %d (%d,%d): got G %v, want %v", idx, x, y, got, wantG)
					}
				}
			}
		}
		if b.H != (mh+7)/8*8 || b.W != (mw+7)/8*8 {
			t.Errorf("got %dx%d for largest %dx%d, want multiples of 8", b.H, b.W, mh, mw)
		}
	}
}

// TestLoaderBadSample: a bad sample fails its batch with a *SampleError; the
// loop can go on.
func TestLoaderBadSample(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 12, bad: map[int]bool{5: true, 6: true}}
	for _, workers := range []int{1, 3} {
		l := newLoader(t, ds, trainTF, Config{BatchSize: 4, Workers: workers, DropLast: true})
		var good, bad int
		for b, err := range l.Epoch(context.Background(), 0, 0) {
			if err != nil {
				var se *SampleError
				if !errors.As(err, &se) || se.ID != idOf(5) || !strings.Contains(err.Error(), "mem/"+idOf(5)+".jpg") {
					t.Errorf("got %v, want sample %s's error (the first of the batch)", err, idOf(5))
				}
				bad++
				continue
			}
			good += b.N
		}
		if good != 8 || bad != 1 {
			t.Errorf("workers %d: got %d good samples, %d bad batches; want 8, 1", workers, good, bad)
		}
	}
}

func TestLoaderConfigErrors(t *testing.T) {
	ds := &memDataset{task: label.Segmentation, n: 3}
	for _, tc := range []struct {
		cfg  Config
		tf   Transform
		want string
	}{
		{Config{}, trainTF, "batch size 0"},
		{Config{BatchSize: 4, DropLast: true}, trainTF, "no full batch"},
		{Config{BatchSize: 1, Workers: -1}, trainTF, "workers -1"},
		{Config{BatchSize: 1}, Transform{Train: true}, "needs CropH"},
		{Config{BatchSize: 3, DropLast: true, Shards: 2}, trainTF, "not a multiple of the 2 shards"},
		{Config{BatchSize: 2, DropLast: true, Shard: 2, Shards: 2}, trainTF, "shard 2 of 2"},
		{Config{BatchSize: 2, Shards: 2}, trainTF, "need DropLast"},
	} {
		if _, err := NewLoader(ds, tc.tf, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewLoader(&memDataset{}, trainTF, Config{BatchSize: 1}); err == nil {
		t.Error("empty dataset: got nil error")
	}
}

// waitGoroutines waits for the goroutine count to fall back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLoaderNoLeak: breaking out of the loop or cancelling the context stops
// every goroutine.
func TestLoaderNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	ds := &memDataset{task: label.Segmentation, n: 200}
	l := newLoader(t, ds, trainTF, Config{BatchSize: 2, Workers: 4, Prefetch: 3, Shuffle: true})

	for range l.Epoch(context.Background(), 0, 0) {
		break
	}
	waitGoroutines(t, base)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	cause := errors.New("interrupt signal received")
	n, stopped := 0, false
	for b, err := range l.Epoch(ctx, 0, 0) {
		if err != nil {
			if !errors.Is(err, cause) {
				t.Errorf("got %v, want the cancel cause", err)
			}
			stopped = true
			continue
		}
		if b == nil {
			t.Fatal("nil batch without error")
		}
		if n++; n == 3 {
			cancel(cause)
		}
	}
	if !stopped || n != 3 {
		t.Errorf("got %d batches, stopped %v; want 3 batches and then the cause", n, stopped)
	}
	waitGoroutines(t, base)

	// Cancelled while the consumer waits for a slow sample.
	slow := &memDataset{task: label.Segmentation, n: 20, load: func(int) { time.Sleep(20 * time.Millisecond) }}
	l = newLoader(t, slow, trainTF, Config{BatchSize: 4, Workers: 2})
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	for _, err := range l.Epoch(ctx, 0, 0) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want deadline exceeded", err)
		}
	}
	waitGoroutines(t, base)
}

// TestLoaderBounded: the loader reads at most Prefetch batches ahead of the
// batch the consumer holds, however slow the consumer.
func TestLoaderBounded(t *testing.T) {
	var loaded atomic.Int64
	ds := &memDataset{task: label.Classification, n: 400, load: func(int) { loaded.Add(1) }}
	const B, P = 4, 2
	l := newLoader(t, ds, Transform{CropH: 4, CropW: 4}, Config{BatchSize: B, Workers: 3, Prefetch: P})
	n := 0
	for _, err := range l.Epoch(context.Background(), 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		limit := int64((n + P) * B)
		deadline := time.Now().Add(time.Second)
		for loaded.Load() < limit && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
		if got := loaded.Load(); got != limit {
			t.Fatalf("holding batch %d: %d samples loaded, want %d (prefetch %d batches of %d)", n, got, limit, P, B)
		}
		if n == 5 {
			break
		}
	}
}

// TestLoaderVOC runs the loader on VOC files.
func TestLoaderVOC(t *testing.T) {
	var samples []vocSample
	for i := range 5 {
		samples = append(samples, goodSample(t, fmt.Sprintf("2007_%06d", i), 20+i, 15+2*i))
	}
	v, err := OpenVOC(makeVOC(t, t.TempDir(), samples), "train", VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := newLoader(t, v, Transform{Stride: 4}, Config{BatchSize: 2, Workers: 2})
	batches := collect(t, l, 0, 0)
	if len(batches) != 3 || batches[1].IDs[1] != "2007_000003" || batches[1].Sizes[1] != [2]int{21, 23} {
		t.Fatalf("got %d batches, %+v", len(batches), batches[1].Sizes)
	}
	b := batches[2]
	m := synthMask(24, 23, 21)
	for y := range b.H {
		for x := range b.W {
			want := label.Ignore
			if x < 24 && y < 23 {
				want = int(m.Pix[y*24+x])
			}
			if got := b.Labels[y*b.W+x]; got != want {
				t.Fatalf("(%d,%d): got %d, want %d", x, y, got, want)
			}
		}
	}
}
