package distributed

import (
	"bytes"
	"sync"
	"testing"
)

// runWorld runs body on every rank of a loopback world of n and waits.
func runWorld(t *testing.T, n int, body func(c Comm) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r, c := range Loopback(n) {
		wg.Go(func() { errs[r] = body(c) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func TestLoopbackCollectives(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		runWorld(t, n, func(c Comm) error {
			r := c.Rank()
			for round := range 5 { // back-to-back collectives must not mix rounds
				f := []float32{float32(r + 1), float32(10 * (r + 1)), float32(round)}
				if err := c.AllreduceF32(f); err != nil {
					return err
				}
				tri := float32(n * (n + 1) / 2)
				if want := []float32{tri, 10 * tri, float32(round * n)}; f[0] != want[0] || f[1] != want[1] || f[2] != want[2] {
					t.Errorf("n=%d rank %d round %d: allreduce f32 = %v, want %v", n, r, round, f, want)
				}
				d := []float64{0.5 * float64(r)}
				if err := c.AllreduceF64(d); err != nil {
					return err
				}
				if want := 0.5 * float64(n*(n-1)/2); d[0] != want {
					t.Errorf("n=%d rank %d: allreduce f64 = %v, want %v", n, r, d[0], want)
				}
				root := round % n
				b := []byte{byte(r), byte(r), byte(r)}
				if err := c.Broadcast(b, root); err != nil {
					return err
				}
				if !bytes.Equal(b, []byte{byte(root), byte(root), byte(root)}) {
					t.Errorf("n=%d rank %d: broadcast from %d gave %v", n, r, root, b)
				}
				var src []byte
				if r == root {
					src = []byte("weights of the root")
				}
				got, err := BroadcastBytes(c, src, root)
				if err != nil {
					return err
				}
				if string(got) != "weights of the root" {
					t.Errorf("n=%d rank %d: BroadcastBytes gave %q", n, r, got)
				}
				if err := c.Barrier(); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

func TestLoopbackMismatchedLengths(t *testing.T) {
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range Loopback(2) {
		wg.Go(func() { errs[r] = c.AllreduceF32(make([]float32, r+1)) })
	}
	wg.Wait()
	if errs[0] == nil && errs[1] == nil {
		t.Fatal("allreduce of 1 and 2 elements: no error")
	}
}

func TestSingle(t *testing.T) {
	c := Single()
	f := []float32{3}
	if err := c.AllreduceF32(f); err != nil || f[0] != 3 || c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("single world: %v %v rank %d size %d", f, err, c.Rank(), c.Size())
	}
	b, err := BroadcastBytes(c, []byte("x"), 0)
	if err != nil || string(b) != "x" {
		t.Fatalf("BroadcastBytes in a world of one: %q %v", b, err)
	}
}
