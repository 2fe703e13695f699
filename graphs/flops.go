package graphs

import "fmt"

// FLOPs returns the forward FLOPs per image of cfg's convolutions and fully
// connected layers: 2·Cout·Cin·kH·kW·Ho·Wo per convolution, 2·Out·In per linear layer.
// Batch norm, pooling, activations and the loss are not counted.
func FLOPs(cfg Config) (float64, error) {
	s, err := Summarize(cfg)
	if err != nil {
		return 0, err
	}
	specs, err := Specs(cfg)
	if err != nil {
		return 0, err
	}
	weights := map[string][]int{}
	for _, p := range specs {
		weights[p.Name] = p.Shape
	}
	var flops float64
	for _, r := range s.Rows {
		w := weights[r.Module+".weight"]
		switch r.Type {
		case "Conv2D":
			if len(w) != 4 || len(r.Shape) != 4 {
				return 0, fmt.Errorf("graphs: flops: %s: weight %v, output %v", r.Layer, w, r.Shape)
			}
			flops += 2 * float64(w[0]*w[1]*w[2]*w[3]) * float64(r.Shape[2]*r.Shape[3])
		case "Dense":
			if len(w) != 2 {
				return 0, fmt.Errorf("graphs: flops: %s: weight %v", r.Layer, w)
			}
			flops += 2 * float64(w[0]*w[1])
		}
	}
	return flops, nil
}
