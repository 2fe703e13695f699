package train

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
)

func saveModel(t *testing.T, cfg graphs.Config) (*graphs.Model, string) {
	t.Helper()
	m, err := graphs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Biases, batch-norm parameters and running statistics start at 0 or 1 in every
	// model: shift each tensor by its own amount so that a copied one is told apart
	// from one left at its initial value.
	for i, p := range m.Params {
		for j := range p.Data {
			p.Data[j] += float32(i+1) / 8
		}
	}
	path := filepath.Join(t.TempDir(), cfg.Arch+".safetensors")
	if err := checkpoints.Save(path, WeightsFile(m, nil)); err != nil {
		t.Fatal(err)
	}
	return m, path
}

// torchvision classifier weights initialise the segmentation encoders.
func TestLoadPretrainedEncoders(t *testing.T) {
	tests := []struct {
		src, dst   graphs.Config
		pairs      [][2]string // source name, target name
		wantLoaded int
	}{
		{graphs.Config{Arch: "vgg16-bn", Mult: 0.125, InputH: 32, Seed: 5}, graphs.Config{Arch: "vgg16-segnet", Mult: 0.125, Seed: 6},
			[][2]string{{"features.0.weight", "encoder.0.weight"}, {"features.41.running_var", "encoder.41.running_var"}}, 13 * 6},
		{graphs.Config{Arch: "vgg19", Mult: 0.125, InputH: 32, Seed: 5}, graphs.Config{Arch: "vgg19-unet", Mult: 0.125, Seed: 6},
			[][2]string{{"features.0.weight", "b1.0.weight"}, {"features.2.bias", "b1.2.bias"}, {"features.5.weight", "b2.0.weight"},
				{"features.16.weight", "b3.6.weight"}, {"features.34.weight", "b5.6.weight"}}, 16 * 2},
	}
	for _, tt := range tests {
		t.Run(tt.dst.Arch, func(t *testing.T) {
			src, path := saveModel(t, tt.src)
			dst, err := graphs.New(tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := LoadPretrained(dst, path)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Loaded) != tt.wantLoaded {
				t.Errorf("loaded %d tensors, want %d", len(rep.Loaded), tt.wantLoaded)
			}
			for _, p := range tt.pairs {
				a, b := src.Param(p[0]).Data, dst.Param(p[1]).Data
				for i := range a {
					if a[i] != b[i] {
						t.Fatalf("%s not copied to %s", p[0], p[1])
					}
				}
			}
			if why := rep.Skipped["classifier.6.weight"]; why == "" {
				t.Errorf("classifier weights not reported as skipped: %v", rep.Skipped)
			}
			var sb strings.Builder
			rep.Print(&sb, path)
			if !strings.Contains(sb.String(), "loaded") {
				t.Error(sb.String())
			}
		})
	}
}

func TestLoadPretrainedNothingMatches(t *testing.T) {
	_, path := saveModel(t, graphs.Config{Arch: "alexnet", Mult: 0.125, InputH: 99})
	m, _ := graphs.New(graphs.Config{Arch: "vgg19-unet", Mult: 0.125})
	if _, err := LoadPretrained(m, path); err == nil || !strings.Contains(err.Error(), "no tensor matches") {
		t.Errorf("got %v", err)
	}
}

// Loading refuses another architecture or class count and names the differences.
func TestLoadWeightsMismatch(t *testing.T) {
	_, path := saveModel(t, graphs.Config{Arch: "vgg19-unet", Mult: 0.125, Classes: 5})
	tests := []struct {
		cfg  graphs.Config
		want string
	}{
		{graphs.Config{Arch: "vgg19-unet", Mult: 0.125}, "head.weight"},
		{graphs.Config{Arch: "vgg16-segnet", Mult: 0.125}, "encoder.0.weight"},
		{graphs.Config{Arch: "vgg19-unet", Mult: 0.25, Classes: 5}, "b1.0.weight"},
	}
	for _, tt := range tests {
		_, _, err := OpenModelAs(path, tt.cfg)
		var me *checkpoints.MismatchError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%+v: got %v, want a mismatch naming %s", tt.cfg, err, tt.want)
		}
	}
	m, _, err := OpenModel(path)
	if err != nil || m.Config.Classes != 5 {
		t.Errorf("OpenModel of the export: %v", err)
	}
}

func TestClassNames(t *testing.T) {
	named := &checkpoints.File{Metadata: map[string]string{MetaClassNames: `["road","sky"]`}}
	for _, tc := range []struct {
		name    string
		f       *checkpoints.File
		classes int
		want    []string
	}{
		{"stored", named, 2, []string{"road", "sky"}},
		{"stored, more classes", named, 3, []string{"road", "sky", "class2"}},
		{"none, 2 classes", nil, 2, []string{"background", "aeroplane"}},
		{"no metadata, 21 classes", &checkpoints.File{}, 21, label.VOCClasses()},
		{"none, 22 classes", nil, 22, label.Names(22, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassNames(tc.f, tc.classes); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := ClassNames(nil, 22)[0]; got != "class0" {
		t.Errorf("22 unnamed classes: first is %q, want class0", got)
	}
}
