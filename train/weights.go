package train

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"slices"
	"strings"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
)

// Metadata keys of vggo checkpoints (besides the checkpoints package's own and the
// optimizer's optim.*).
const (
	MetaConfig     = "vggo.config"      // the train.Config as JSON (training checkpoints)
	MetaModel      = "vggo.model"       // the graphs.Config as JSON (every vggo file)
	MetaClassNames = "vggo.class_names" // the class names as a JSON array
	MetaSeed       = "vggo.seed"        // the run's seed (training checkpoints)
	MetaPalette    = "vggo.palette"     // the mask colours, "#rrggbb" in label order, as a JSON array
)

// modelTensors returns the model's parameters and buffers as checkpoint tensors, in
// state_dict order, sharing their memory.
func modelTensors(m *graphs.Model) []checkpoints.Tensor {
	out := make([]checkpoints.Tensor, len(m.Params))
	for i, p := range m.Params {
		out[i] = checkpoints.Tensor{Name: p.Name, DType: checkpoints.F32, Shape: p.Shape, Data: p.Data}
	}
	return out
}

func modelSpecs(m *graphs.Model) []checkpoints.Spec {
	out := make([]checkpoints.Spec, len(m.Params))
	for i, p := range m.Params {
		out[i] = checkpoints.Spec{Name: p.Name, DType: checkpoints.F32, Shape: p.Shape}
	}
	return out
}

// WeightsFile is a weights-only file of the model: its parameters and buffers under their
// PyTorch names, and the model configuration and class names in the metadata.
func WeightsFile(m *graphs.Model, names []string) *checkpoints.File {
	mc, _ := json.Marshal(m.Config)
	nc, _ := json.Marshal(names)
	return &checkpoints.File{Tensors: modelTensors(m), Metadata: map[string]string{MetaModel: string(mc), MetaClassNames: string(nc)}}
}

// ClassNames returns the class names stored in a vggo file, completed by label.Names.
// A file without names gets the VOC names when it has at most 21 classes (the first
// classes of them), else class0, class1, ....
func ClassNames(f *checkpoints.File, classes int) []string {
	var names []string
	if f != nil {
		_ = json.Unmarshal([]byte(f.Metadata[MetaClassNames]), &names)
	}
	if voc := label.VOCClasses(); len(names) == 0 && classes <= len(voc) {
		names = voc
	}
	return label.Names(classes, names)
}

// Palette returns the mask colours stored in a vggo file (nil: the VOC colormap).
func Palette(f *checkpoints.File) ([]color.RGBA, error) {
	js, ok := f.Metadata[MetaPalette]
	if !ok {
		return nil, nil
	}
	var hex []string
	if err := json.Unmarshal([]byte(js), &hex); err != nil {
		return nil, fmt.Errorf("train: metadata %s: %w", MetaPalette, err)
	}
	cols := make([]color.RGBA, len(hex))
	for i, h := range hex {
		c, err := data.ParseColor(h)
		if err != nil {
			return nil, fmt.Errorf("train: metadata %s entry %d: %w", MetaPalette, i, err)
		}
		cols[i] = c
	}
	return cols, nil
}

// isWeight tells model tensors from optimizer state and PyTorch's batch counters.
func isWeight(name string) bool {
	return !strings.HasPrefix(name, StatePrefix) && !strings.HasPrefix(name, EMAPrefix) && !strings.HasSuffix(name, "num_batches_tracked")
}

// LoadWeights copies the tensors of f into the model in place. Every parameter and buffer
// must be present with its shape; otherwise nothing is changed and the error lists the
// differences (a different architecture, width or class count).
func LoadWeights(m *graphs.Model, f *checkpoints.File, path string) error {
	weights := f.Filter(isWeight)
	if d := checkpoints.Match(modelSpecs(m), weights); !d.OK() {
		return d.Err(path)
	}
	for _, p := range m.Params {
		t, _ := weights.Tensor(p.Name)
		copy(p.Data, t.Data)
	}
	return nil
}

// OpenModel rebuilds the model stored in a vggo file (training checkpoint or export) and
// loads its weights. It returns the file too, for the caller's metadata.
func OpenModel(path string) (*graphs.Model, *checkpoints.File, error) {
	f, err := checkpoints.Load(path)
	if err != nil {
		return nil, nil, err
	}
	mc, ok := f.Metadata[MetaModel]
	if !ok {
		return nil, nil, fmt.Errorf("train: %s has no vggo model description (a weights file from elsewhere): give --model, --width and --classes", path)
	}
	var cfg graphs.Config
	if err := json.Unmarshal([]byte(mc), &cfg); err != nil {
		return nil, nil, fmt.Errorf("train: %s: bad %s metadata: %w", path, MetaModel, err)
	}
	m, err := graphs.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %s: %w", path, err)
	}
	if err := LoadWeights(m, f, path); err != nil {
		return nil, nil, err
	}
	return m, f, nil
}

// OpenModelAs builds the model cfg and loads weights from any safetensors file holding
// exactly its parameter names (a vggo export, or weights converted from PyTorch). It
// returns the file too, for the caller's metadata.
func OpenModelAs(path string, cfg graphs.Config) (*graphs.Model, *checkpoints.File, error) {
	f, err := checkpoints.Load(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := graphs.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := LoadWeights(m, f, path); err != nil {
		return nil, nil, err
	}
	return m, f, nil
}

// PretrainedReport says what LoadPretrained did with each tensor of the file.
type PretrainedReport struct {
	Loaded  []string          // model names filled
	Skipped map[string]string // file name → why it was not used
	Missing []string          // model parameters left at their initial values
	Source  string            // what the file was, when not safetensors (checkpoints.File.Source)
}

// Print writes a short account of the report.
func (r *PretrainedReport) Print(w io.Writer, path string) {
	if r.Source != "" {
		path += " (" + r.Source + ")"
	}
	fmt.Fprintf(w, "pretrained %s: loaded %d tensors, skipped %d, %d model tensors keep their initial values\n",
		path, len(r.Loaded), len(r.Skipped), len(r.Missing))
	n := 0
	for name, why := range r.Skipped {
		if n == 10 {
			fmt.Fprintf(w, "  ... and %d more skipped\n", len(r.Skipped)-n)
			break
		}
		fmt.Fprintf(w, "  skipped %s: %s\n", name, why)
		n++
	}
}

// LoadPretrained fills the parameters of m that a safetensors or PyTorch (.pth) file with
// torchvision names provides: same-name tensors of the same shape, and for the segmentation models the VGG
// encoder from torchvision's classifier weights (vgg16-segnet's encoder.N from vgg16_bn's
// features.N; vgg19-unet's bK.J from vgg19's features.N). Everything else is reported,
// not silently dropped.
func LoadPretrained(m *graphs.Model, path string) (*PretrainedReport, error) {
	f, err := checkpoints.Load(path)
	if err != nil {
		return nil, err
	}
	rename := pretrainedMap(m)
	rep := &PretrainedReport{Skipped: map[string]string{}, Source: f.Source()}
	filled := map[string]bool{}
	for _, t := range f.Tensors {
		if !isWeight(t.Name) {
			continue
		}
		target := t.Name
		if r, ok := rename[t.Name]; ok {
			target = r
		}
		p := m.Param(target)
		switch {
		case p == nil:
			rep.Skipped[t.Name] = "no such tensor in " + m.Config.Arch
		case t.DType != checkpoints.F32 && t.DType != "":
			rep.Skipped[t.Name] = fmt.Sprintf("dtype %s (want F32)", t.DType)
		case !slices.Equal(p.Shape, t.Shape):
			rep.Skipped[t.Name] = fmt.Sprintf("shape %v, model has %v", t.Shape, p.Shape)
		default:
			copy(p.Data, t.Data)
			filled[target] = true
			rep.Loaded = append(rep.Loaded, target)
		}
	}
	for _, p := range m.Params {
		if !filled[p.Name] {
			rep.Missing = append(rep.Missing, p.Name)
		}
	}
	if len(rep.Loaded) == 0 {
		return rep, fmt.Errorf("train: pretrained %s: no tensor matches %s (file has e.g. %s)", path, m.Config.Arch, firstName(f))
	}
	return rep, nil
}

// pretrainedMap maps torchvision classifier names onto a segmentation model's encoder.
func pretrainedMap(m *graphs.Model) map[string]string {
	out := map[string]string{}
	switch m.Config.Arch {
	case "vgg16-segnet":
		// Same module numbering: conv, bn, relu, ..., pool.
		for _, p := range m.Params {
			if rest, ok := strings.CutPrefix(p.Name, "encoder."); ok {
				out["features."+rest] = p.Name
			}
		}
	case "vgg19-unet":
		// torchvision vgg19 features: conv, relu pairs, a pool after each block.
		i := 0
		for b, blk := range graphs.VGG19() {
			for c := 0; c < blk.Convs; c++ {
				for _, s := range []string{"weight", "bias"} {
					out[fmt.Sprintf("features.%d.%s", i, s)] = fmt.Sprintf("b%d.%d.%s", b+1, 2*c, s)
				}
				i += 2
			}
			i++ // pool
		}
	}
	return out
}

func firstName(f *checkpoints.File) string {
	if len(f.Tensors) == 0 {
		return "nothing"
	}
	return f.Tensors[0].Name
}
