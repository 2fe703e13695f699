package graphs

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
)

type initKind int

const (
	initZero    initKind = iota
	initOne              // batch-norm gamma and running variance
	initKaiming          // conv weights: N(0, 2/fan_out), torchvision's kaiming_normal_(mode="fan_out", nonlinearity="relu")
	initLinear           // linear weights: N(0, 0.01²)
)

// initParam fills p from a generator seeded by (seed, p.Name), so a parameter's initial
// value does not depend on what else the model holds or on the order of creation.
func initParam(p *Param, seed uint64) {
	switch p.init {
	case initZero:
		clear(p.Data)
	case initOne:
		for i := range p.Data {
			p.Data[i] = 1
		}
	case initKaiming, initLinear:
		std := 0.01
		if p.init == initKaiming {
			std = math.Sqrt(2 / float64(p.fan))
		}
		h := fnv.New64a()
		h.Write([]byte(p.Name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		for i := range p.Data {
			p.Data[i] = float32(r.NormFloat64() * std)
		}
	}
}
