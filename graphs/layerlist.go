package graphs

import (
	"github.com/vggo/vggo/graphs/ops"
)

// LayerKind names an operation of the layer list.
type LayerKind string

// The operations of the zoo's architectures.
const (
	LayerInput     LayerKind = "Input"     // the images, (N, 3, H, W)
	LayerConv      LayerKind = "Conv"      // Module.weight (Cout, Cin, K, K), Module.bias; Kernel, Stride, Pad; ReLU after it when set
	LayerBatchNorm LayerKind = "BatchNorm" // Module.weight, .bias, .running_mean, .running_var; Eps; ReLU after it when set
	LayerReLU      LayerKind = "ReLU"
	LayerMaxPool   LayerKind = "MaxPool"   // Kernel × Kernel, Stride, no padding, floor
	LayerMaxUnpool LayerKind = "MaxUnpool" // Inputs[1] is the MaxPool whose argmax places the values; output: that pool's input size
	LayerUpsample  LayerKind = "Upsample"  // nearest neighbour, × Scale
	LayerConcat    LayerKind = "Concat"    // along the channels, Inputs in order
	LayerFlatten   LayerKind = "Flatten"   // (N, C, H, W) → (N, C·H·W), row-major
	LayerLinear    LayerKind = "Linear"    // Module.weight (out, in), Module.bias: y = x·Wᵀ + b
	LayerDropout   LayerKind = "Dropout"   // the identity in evaluation
)

// Layer is one operation of a model in evaluation mode, as a list that other formats
// (ONNX) can be written from. Parameters are found by name: Module + ".weight", etc.
type Layer struct {
	Kind   LayerKind
	Name   string // display name (block1_conv1), as in the summary
	Module string // PyTorch module path of its parameters, "" for parameter-free layers
	Inputs []int  // indices of earlier layers; the input layer has none
	Shape  []int  // output shape at batch 1 and the configured input size
	Kernel int    // Conv, MaxPool
	Stride int    // Conv, MaxPool
	// Pad is the convolution's padding at the configured input size ('same' padding,
	// TensorFlow's, puts an odd pixel at the bottom/right). Stride-1 convolutions pad
	// the same at every input size.
	Pad   ops.Padding
	ReLU  bool    // Conv, BatchNorm: a ReLU follows (fused in vggo's graphs)
	Eps   float64 // BatchNorm
	Scale int     // Upsample
}

// Layers returns the model's layers in evaluation order; the last one gives the logits.
func (m *Model) Layers() ([]Layer, error) {
	n, err := specPass(m.Config)
	if err != nil {
		return nil, err
	}
	for i := range n.layers {
		l := &n.layers[i]
		if l.Kind != LayerBatchNorm {
			continue
		}
		l.Eps = 1e-5
		if st := m.bn[l.Module]; st != nil && st.Eps > 0 {
			l.Eps = st.Eps
		}
	}
	return n.layers, nil
}

// record appends a layer and returns its index.
func (n *net) record(l Layer, shape []int) int {
	l.Shape = append([]int(nil), shape...)
	n.layers = append(n.layers, l)
	return len(n.layers) - 1
}

// keepPool remembers the pooling layer id under key, for an unpooling later.
func (n *net) keepPool(key string, id int) {
	if n.poolAt == nil {
		n.poolAt = map[string]int{}
	}
	n.poolAt[key] = id
}
