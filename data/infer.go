package data

import (
	"image"

	"github.com/vggo/vggo/label"
)

// Preprocess turns one decoded image into network input as the evaluation transform
// does, for prediction: segmentation keeps the image's own resolution, padded bottom/right
// to a multiple of tf.Stride (h, w are the padded size); classification resizes the
// shorter side to tf.Resize and centre-crops tf.CropH×tf.CropW. The result is 3*h*w
// normalised floats, CHW.
func Preprocess(img *image.RGBA, tf Transform, task label.Task) (chw []float32, h, w int, err error) {
	tf.Train = false
	t, err := newTransformer(tf, task)
	if err != nil {
		return nil, 0, 0, err
	}
	var s scratch
	sw, sh := img.Rect.Dx(), img.Rect.Dy()
	if task == label.Classification {
		h, w = t.CropH, t.CropW
		chw = make([]float32, 3*h*w)
		t.classify(&Example{Image: img}, nil, chw, h, w, &s)
		return chw, h, w, nil
	}
	h = (sh + t.Stride - 1) / t.Stride * t.Stride
	w = (sw + t.Stride - 1) / t.Stride * t.Stride
	chw = make([]float32, 3*h*w)
	t.writeRGB(chw, h, w, img, 0, 0, 0, sw, 0, sh, false)
	return chw, h, w, nil
}
