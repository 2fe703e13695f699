package data

import (
	"context"
	"fmt"
	"image"
	"testing"

	"golang.org/x/image/draw"

	"github.com/vggo/vggo/label"
)

// benchVOC writes n VOC-style 500x375 samples (the typical VOC size) with noisy
// content, so that JPEG decoding costs what it costs on photographs.
func benchVOC(b *testing.B, n int) *VOC {
	var samples []vocSample
	for i := range n {
		img, mask := demoSample(DemoConfig{Size: 500, Seed: uint64(i)}, i)
		img.Rect.Max.Y, mask.Rect.Max.Y = 375, 375
		samples = append(samples, vocSample{fmt.Sprintf("2007_%06d", i), encodeJPEG(b, img), encodeMask(b, mask)})
	}
	v, err := OpenVOC(makeVOC(b, b.TempDir(), samples), "train", VOCOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkLoaderTrain measures loader throughput with the segmentation training
// transforms (scale 0.5-2, pad, 512x512 crop, flip, normalise) on 500x375 JPEGs:
// decoding, augmentation and batch assembly, reported as images/s.
func BenchmarkLoaderTrain(b *testing.B) {
	v := benchVOC(b, 32)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			l, err := NewLoader(v, Transform{Train: true, CropH: 512, CropW: 512},
				Config{BatchSize: 8, Workers: workers, Prefetch: 2, Shuffle: true, DropLast: true})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			images, epoch := 0, 0
			for b.Loop() {
				for bt, err := range l.Epoch(context.Background(), epoch, 0) {
					if err != nil {
						b.Fatal(err)
					}
					images += bt.N
				}
				epoch++
			}
			b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkSegTrainTransform measures the training transform alone (no decoding).
func BenchmarkSegTrainTransform(b *testing.B) {
	v := benchVOC(b, 1)
	ex, err := v.Load(0)
	if err != nil {
		b.Fatal(err)
	}
	tr, _ := newTransformer(Transform{Train: true, CropH: 512, CropW: 512}, label.Segmentation)
	img, lab := make([]float32, 3*512*512), make([]int, 512*512)
	var s scratch
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := newRNG(0, streamSample, 0, i)
		tr.apply(&ex, &r, img, lab, 512, 512, &s)
		i++
	}
}

// BenchmarkLoadVOC measures reading one 500x375 sample (JPEG + palette PNG).
func BenchmarkLoadVOC(b *testing.B) {
	v := benchVOC(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Load(0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMaskNearest compares the mask's nearest-neighbour path (index tables
// written straight into the int labels) with draw.NearestNeighbor into an
// *image.Gray and a copy: a 500x375 mask scaled by 1.5, 512x512 crop.
func BenchmarkMaskNearest(b *testing.B) {
	m := synthMask(500, 375, 21)
	const H, W, dw, dh, ox, oy = 512, 512, 750, 563, 100, 20
	lab := make([]int, H*W)
	b.Run("tables", func(b *testing.B) {
		xs, ys := make([]int, W), make([]int, H)
		for b.Loop() {
			nearest(xs, ox, dw, 500)
			nearest(ys, oy, dh, 375)
			writeMask(lab, H, W, m, xs, ys, false)
		}
	})
	b.Run("x/image/draw", func(b *testing.B) {
		dst := image.NewGray(image.Rect(0, 0, W, H))
		for b.Loop() {
			draw.NearestNeighbor.Scale(dst, image.Rect(-ox, -oy, dw-ox, dh-oy), m, m.Rect, draw.Src, nil)
			for i, v := range dst.Pix {
				lab[i] = int(v)
			}
		}
	})
}
