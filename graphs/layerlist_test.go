package graphs

import (
	"slices"
	"testing"

	"github.com/vggo/vggo/label"
)

func TestLayers(t *testing.T) {
	for _, arch := range Names() {
		for _, unpool := range []string{"", UnpoolIndices} {
			if unpool != "" && arch != "vgg16-segnet" {
				continue
			}
			cfg := Config{Arch: arch, Mult: 1.0 / 32, Unpool: unpool, InputH: 64}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			layers, err := m.Layers()
			if err != nil {
				t.Fatal(err)
			}
			// Every parameter is used by exactly one layer, and inputs come first.
			used := map[string]int{}
			for i, l := range layers {
				for _, in := range l.Inputs {
					if in >= i {
						t.Errorf("%s: layer %d (%s) reads layer %d", arch, i, l.Name, in)
					}
				}
				switch l.Kind {
				case LayerConv, LayerLinear:
					used[l.Module+".weight"]++
					used[l.Module+".bias"]++
				case LayerBatchNorm:
					for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
						used[l.Module+"."+s]++
					}
					if l.Eps != 1e-5 {
						t.Errorf("%s: %s eps %g, want 1e-5", arch, l.Name, l.Eps)
					}
				case LayerMaxUnpool:
					if p := layers[l.Inputs[1]]; p.Kind != LayerMaxPool {
						t.Errorf("%s: %s unpools %s, a %s", arch, l.Name, p.Name, p.Kind)
					}
				}
			}
			for _, p := range m.Params {
				if used[p.Name] != 1 {
					t.Errorf("%s: parameter %s used by %d layers, want 1", arch, p.Name, used[p.Name])
				}
			}
			last := layers[len(layers)-1]
			want := []int{1, m.Config.Classes}
			if m.Info.Task == label.Segmentation {
				want = append(want, 64, 64)
			}
			if !slices.Equal(last.Shape, want) {
				t.Errorf("%s: last layer %s has shape %v, want %v", arch, last.Name, last.Shape, want)
			}
		}
	}
}
