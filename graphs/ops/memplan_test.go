package ops

import (
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestPlanArenaChain: a chain x -> relu -> relu -> relu -> relu, each output read by
// the next op only, alternates between two places in the arena, whatever its length.
func TestPlanArenaChain(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 4, 4), G.WithName("x"))
	y := x
	var err error
	for range 4 {
		if y, err = ReLU(y); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := G.Sum(y); err != nil { // a Gorgonia consumer: the last output is not pooled
		t.Fatal(err)
	}
	p := PlanMemory(g)
	if p.Nodes() != 3 || p.ArenaFloats() != 2*96 {
		t.Fatalf("%d pooled nodes in an arena of %d floats: want 3 in 2x96", p.Nodes(), p.ArenaFloats())
	}
}

// TestMemoryPlanFallback: an acquisition whose place overlaps a live buffer (a run in
// another order than the simulated one) gets a buffer of its own, and the place is used
// again once the buffer over it is released.
func TestMemoryPlanFallback(t *testing.T) {
	a, b := new(opHooks), new(opHooks)
	p := &MemoryPlan{live: map[uintptr]*planBuf{}, arenaSize: 100,
		slots: map[*opHooks]planSlot{a: {0, 60}, b: {40, 60}}}
	da := p.acquire(a, 60, 1, nil)
	db := p.acquire(b, 60, 1, nil)
	if p.Fallbacks() != 1 {
		t.Fatalf("%d fallbacks, want 1", p.Fallbacks())
	}
	if &da[0] != &p.arena[0] || len(db) != 60 || &db[0] == &p.arena[40] {
		t.Fatal("a should sit at the arena's start and b in a buffer of its own")
	}
	for i := range da {
		da[i] = 1
	}
	for i := range db {
		db[i] = 2
	}
	for i, v := range da {
		if v != 1 {
			t.Fatalf("a[%d] = %v: overwritten by b", i, v)
		}
	}
	p.release([]G.Value{tensor.New(tensor.WithBacking(da)), tensor.New(tensor.WithBacking(db))})
	if db2 := p.acquire(b, 60, 1, db); &db2[0] != &p.arena[40] || p.Fallbacks() != 1 {
		t.Fatalf("after a's release b should take its place (fallbacks %d)", p.Fallbacks())
	}
	if got, want := p.PoolFloats(), int64(100+60); got != want {
		t.Errorf("pool allocated %d floats, want %d (arena + one fallback)", got, want)
	}
}

// TestMemoryPlanReset: after a run that stopped part-way, with a buffer still live,
// Reset frees its place, so that the next run finds its own places free.
func TestMemoryPlanReset(t *testing.T) {
	a, b := new(opHooks), new(opHooks)
	p := &MemoryPlan{live: map[uintptr]*planBuf{}, arenaSize: 100,
		slots: map[*opHooks]planSlot{a: {0, 60}, b: {40, 60}}}
	p.acquire(a, 60, 2, nil) // its consumers never run
	p.Reset()
	if db := p.acquire(b, 60, 1, nil); &db[0] != &p.arena[40] || p.Fallbacks() != 0 {
		t.Fatalf("after Reset b should take its place in the arena (fallbacks %d)", p.Fallbacks())
	}
	if p.PeakFloats() != 60 {
		t.Errorf("peak %d floats, want 60", p.PeakFloats())
	}
}
