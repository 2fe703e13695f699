package graphs

import (
	"fmt"
	"slices"

	"github.com/vggo/vggo/graphs/ops"
)

// Block is one VGG stage: Convs 3x3 'same' convolutions of Channels outputs, then a 2x2
// max pooling.
type Block struct{ Convs, Channels int }

// The VGG configurations of Simonyan & Zisserman (2015), table 1.
var (
	vgg11 = []Block{{1, 64}, {1, 128}, {2, 256}, {2, 512}, {2, 512}} // A
	vgg13 = []Block{{2, 64}, {2, 128}, {2, 256}, {2, 512}, {2, 512}} // B
	vgg16 = []Block{{2, 64}, {2, 128}, {3, 256}, {3, 512}, {3, 512}} // D
	vgg19 = []Block{{2, 64}, {2, 128}, {4, 256}, {4, 512}, {4, 512}} // E
)

// VGG19 returns configuration E, the encoder of vgg19-unet; torchvision's vgg19 numbers
// its modules from it (conv, relu per convolution, a pool per block).
func VGG19() []Block { return slices.Clone(vgg19) }

// fcWidth is the hidden width of the classifiers' fully connected layers.
const fcWidth = 4096

// scaled divides a paper width by the configuration's divisor, as width_div does.
func (n *net) scaled(c int) int {
	k, _ := n.cfg.Divisor()
	return max(c/k, 1)
}

// vggFeatures builds the convolutional stages of a VGG as one torch nn.Sequential called
// prefix, numbering modules as torchvision does (conv, [bn,] relu, ..., pool). keys, when
// non-nil, receive the argmax keys of each pooling (SegNet unpooling), and outs the
// output of each stage before its pooling (U-Net skips).
func (n *net) vggFeatures(x act, prefix string, blocks []Block, bn bool, keepIdx bool) (act, []act) {
	i := 0
	var pre []act
	for b, blk := range blocks {
		for c := 1; c <= blk.Convs; c++ {
			layer, relu := fmt.Sprintf("block%d_conv%d", b+1, c), fmt.Sprintf("block%d_relu%d", b+1, c)
			if !bn {
				x = n.convReLU(x, fmt.Sprintf("%s.%d", prefix, i), layer, relu, n.scaled(blk.Channels), 3, 1, nil)
				i += 2
				continue
			}
			x = n.convBN(x, fmt.Sprintf("%s.%d", prefix, i), layer, fmt.Sprintf("%s.%d", prefix, i+1), fmt.Sprintf("block%d_bn%d", b+1, c), relu,
				n.scaled(blk.Channels), 3, 1, nil)
			i += 3
		}
		pre = append(pre, x)
		key := ""
		if keepIdx {
			key = fmt.Sprintf("pool%d", b+1)
		}
		x = n.maxPool(x, fmt.Sprintf("block%d_pool", b+1), 2, 2, key)
		i++
	}
	return x, pre
}

// classifierHead is torchvision's classifier: Linear-ReLU-Dropout twice, then Linear,
// modules classifier.0 .. classifier.6.
func (n *net) classifierHead(x act) act {
	x = n.flatten(x, "flatten")
	fc := n.scaled(fcWidth)
	x = n.linear(x, "classifier.0", "fc1", fc)
	x = n.relu(x, "fc1_relu")
	x = n.dropout(x, "classifier.2", "fc1_dropout")
	x = n.linear(x, "classifier.3", "fc2", fc)
	x = n.relu(x, "fc2_relu")
	x = n.dropout(x, "classifier.5", "fc2_dropout")
	return n.linear(x, "classifier.6", "predictions", n.cfg.Classes)
}

// vggClassifier builds a VGG classifier of Simonyan & Zisserman (2015): the blocks'
// convolutions (each followed by batch norm when bn is set, as torchvision's vgg16_bn),
// then classifierHead.
func vggClassifier(blocks []Block, bn bool) func(n *net, x act) act {
	return func(n *net, x act) act {
		x, _ = n.vggFeatures(x, "features", blocks, bn, false)
		return n.classifierHead(x)
	}
}

// buildAlexNet is AlexNet (Krizhevsky et al. 2012) as a single tower: 96@11x11/4 with
// 'same' padding (asymmetric, as TensorFlow pads), 256@5x5, then 256, 384, 256 @3x3, with
// a valid 3x3/2 max pooling after the first, second and fifth convolutions, and
// classifierHead (FC 4096-4096-classes).
func buildAlexNet(n *net, x act) act {
	x = n.convReLU(x, "conv1", "conv1", "conv1_relu", n.scaled(96), 11, 4, nil)
	x = n.maxPool(x, "pool1", 3, 2, "")
	p2 := ops.Symmetric(2)
	x = n.convReLU(x, "conv2", "conv2", "conv2_relu", n.scaled(256), 5, 1, &p2)
	x = n.maxPool(x, "pool2", 3, 2, "")
	x = n.convReLU(x, "conv3", "conv3", "conv3_relu", n.scaled(256), 3, 1, nil)
	x = n.convReLU(x, "conv4", "conv4", "conv4_relu", n.scaled(384), 3, 1, nil)
	x = n.convReLU(x, "conv5", "conv5", "conv5_relu", n.scaled(256), 3, 1, nil)
	x = n.maxPool(x, "pool5", 3, 2, "")
	return n.classifierHead(x)
}

// alexOut is AlexNet's feature-map side after its three poolings, or 0 when too small.
func alexOut(size int) int {
	s := (size + 3) / 4
	for range 3 {
		if s < 3 {
			return 0
		}
		s = (s-3)/2 + 1
	}
	return s
}

// segnetDecoder mirrors the VGG16 encoder: before each stage an x2 upsampling (or a
// max-unpooling with the matching encoder pooling's indices), then conv+BN+ReLU layers of
// these widths.
var segnetDecoder = [][]int{{512, 512, 512}, {512, 512, 256}, {256, 256, 128}, {128, 64}, {64}}

// buildSegNet is SegNet (Badrinarayanan et al. 2017) with a VGG16-BN encoder: conv+BN+ReLU
// everywhere, a decoder that upsamples x2 (or max-unpools) before each stage, and a 1x1
// conv + BN head, so the logits come out at the input's resolution. (The Keras model whose
// parameter count, 29,460,329, this one matches applies MaxPooling2D at three of those
// places where it means to upsample, and outputs 8x8; upsampling has no parameters.)
func buildSegNet(n *net, x act) act {
	indices := n.cfg.Unpool == UnpoolIndices
	x, pre := n.vggFeatures(x, "encoder", vgg16, true, indices)
	i := 0
	for s, widths := range segnetDecoder {
		level := len(segnetDecoder) - s // 5, 4, ..., 1: the encoder pooling mirrored
		if indices {
			skip := pre[level-1].shape
			x = n.unpool(x, fmt.Sprintf("dec%d_unpool", level), fmt.Sprintf("pool%d", level), skip[2], skip[3])
		} else {
			x = n.upsample(x, fmt.Sprintf("dec%d_up", level))
		}
		i++
		for c, w := range widths {
			x = n.convBN(x, fmt.Sprintf("decoder.%d", i), fmt.Sprintf("dec%d_conv%d", level, c+1), fmt.Sprintf("decoder.%d", i+1),
				fmt.Sprintf("dec%d_bn%d", level, c+1), fmt.Sprintf("dec%d_relu%d", level, c+1), n.scaled(w), 3, 1, nil)
			i += 3
		}
	}
	return n.convBN(x, fmt.Sprintf("decoder.%d", i), "head_conv", fmt.Sprintf("decoder.%d", i+1), "head_bn", "", n.cfg.Classes, 1, 1, &ops.Padding{})
}

// unetBlock is a torch nn.Sequential of convs 3x3 conv+ReLU pairs named prefix.0, prefix.2, ...
func (n *net) unetBlock(x act, prefix string, convs, width int) act {
	for c := 0; c < convs; c++ {
		x = n.convReLU(x, fmt.Sprintf("%s.%d", prefix, 2*c), fmt.Sprintf("%s_conv%d", prefix, c+1), fmt.Sprintf("%s_relu%d", prefix, c+1), n.scaled(width), 3, 1, nil)
	}
	return x
}

// buildUNet is U-Net (Ronneberger et al. 2015) with a VGG19 encoder: the VGG19 blocks
// b1..b5 (block 5 at 1/16, no pooling after it), then per level an x2 upsampling, a
// concatenation with the encoder's output of that level and two 3x3 convolutions, and a
// 1x1 head.
func buildUNet(n *net, x act) act {
	skips := make([]act, 0, 4)
	for b, blk := range vgg19 {
		if b > 0 {
			x = n.maxPool(x, fmt.Sprintf("b%d_pool", b), 2, 2, "")
		}
		x = n.unetBlock(x, fmt.Sprintf("b%d", b+1), blk.Convs, blk.Channels)
		if b < 4 {
			skips = append(skips, x)
		}
	}
	for level := 4; level >= 1; level-- {
		x = n.upsample(x, fmt.Sprintf("u%d_up", level))
		x = n.concat(fmt.Sprintf("u%d_concat", level), x, skips[level-1])
		x = n.unetBlock(x, fmt.Sprintf("u%d", level), 2, vgg19[level-1].Channels)
	}
	return n.conv(x, "head", "head", n.cfg.Classes, 1, 1, &ops.Padding{})
}
