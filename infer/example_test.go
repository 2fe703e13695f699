package infer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/infer"
	"github.com/vggo/vggo/train"
)

// demoModel writes a small demo dataset and an untrained width-1/16 vgg19-unet into dir
// and returns the weights file; a training run's best.safetensors opens the same way.
func demoModel(dir string) (weights, demo string) {
	demo = filepath.Join(dir, "demo")
	if err := data.WriteDemo(demo, data.DemoConfig{Train: 1, Val: 1, Size: 64}); err != nil {
		log.Fatal(err)
	}
	net, err := graphs.New(graphs.Config{Arch: "vgg19-unet", Mult: 1.0 / 16})
	if err != nil {
		log.Fatal(err)
	}
	weights = filepath.Join(dir, "unet.safetensors")
	if err := checkpoints.Save(weights, train.WeightsFile(net, nil)); err != nil {
		log.Fatal(err)
	}
	return weights, demo
}

// Segment a photo: the mask has the image's size, one class index per pixel.
func Example() {
	dir, _ := os.MkdirTemp("", "infer")
	defer os.RemoveAll(dir)
	weights, demo := demoModel(dir)

	m, err := infer.Open(weights, infer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := data.ReadImage(filepath.Join(demo, "JPEGImages", "demo_0000.jpg"))
	if err != nil {
		log.Fatal(err)
	}
	mask, err := m.Segment(context.Background(), img)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Info().Config.Arch, mask.Bounds().Size(), len(m.ClassNames()), "classes; class 8 is", m.ClassNames()[8])
	// Output: vgg19-unet (64,64) 21 classes; class 8 is cat
}

// Slide a 32x32 tile over the image at a stride of 16, with a progress callback.
func ExampleModel_With() {
	dir, _ := os.MkdirTemp("", "infer")
	defer os.RemoveAll(dir)
	weights, demo := demoModel(dir)

	m, err := infer.Open(weights, infer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	tiles := 0
	slide, err := m.With(infer.Options{Mode: infer.Slide, TileH: 32, TileW: 32, StrideH: 16, StrideW: 16,
		Progress: func(done, total int) { tiles = total }})
	if err != nil {
		log.Fatal(err)
	}
	img, _ := data.ReadImage(filepath.Join(demo, "JPEGImages", "demo_0000.jpg"))
	mask, err := slide.Segment(context.Background(), img)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(mask.Bounds().Size(), tiles, "tiles")
	// Output: (64,64) 9 tiles
}

// Classify an image: the top 3 classes, most probable first.
func ExampleModel_Classify() {
	dir, _ := os.MkdirTemp("", "infer")
	defer os.RemoveAll(dir)
	_, demo := demoModel(dir)

	net, err := graphs.New(graphs.Config{Arch: "vgg11", Mult: 1.0 / 64, Classes: 5, InputH: 32})
	if err != nil {
		log.Fatal(err)
	}
	m, err := infer.New(net, []string{"a", "b", "c", "d", "e"}, infer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, _ := data.ReadImage(filepath.Join(demo, "JPEGImages", "demo_0000.jpg"))
	top, err := m.Classify(context.Background(), img, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(top), top[0].Prob >= top[1].Prob && top[1].Prob >= top[2].Prob)
	// Output: 3 true
}
