// Package ops holds vggo's custom Gorgonia ops (forward kernel + symbolic gradient) for
// the layers where Gorgonia's own are slow, memory-hungry or wrong: convolution, linear,
// batch norm, pooling with indices and unpooling, upsampling, concat, ReLU and dropout.
//
// Every op is float32 and NCHW. Every op's hash covers all of its parameters (and a layer
// id for stateful ops), so Gorgonia's hash-consing never merges two different layers.
package ops

import "fmt"

// Padding is explicit zero padding on each side of the two spatial axes.
type Padding struct{ Top, Bottom, Left, Right int }

// SamePadding returns TensorFlow/Keras 'same' padding for one input size, kernel and
// stride: total = max((out-1)*stride + k - in, 0) with out = ceil(in/stride), the odd
// pixel going to the bottom/right.
func SamePadding(inH, inW, kH, kW, strideH, strideW int) Padding {
	t, b := samePad1(inH, kH, strideH)
	l, r := samePad1(inW, kW, strideW)
	return Padding{Top: t, Bottom: b, Left: l, Right: r}
}

func samePad1(in, k, s int) (int, int) {
	out := (in + s - 1) / s
	total := max((out-1)*s+k-in, 0)
	return total / 2, total - total/2
}

// Symmetric returns the same padding p on all four sides.
func Symmetric(p int) Padding { return Padding{p, p, p, p} }

func (p Padding) String() string {
	return fmt.Sprintf("pad(t%d,b%d,l%d,r%d)", p.Top, p.Bottom, p.Left, p.Right)
}
