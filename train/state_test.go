package train

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/vggo/vggo/report"
)

// Checkpoints written before the progress record kept it in eleven metadata keys; they
// still resume.
func TestReadLegacyProgress(t *testing.T) {
	legacy := map[string]string{
		"vggo.epoch": "3", "vggo.epoch_step": "2", "vggo.global_step": "26",
		"vggo.epoch_loss_sum": "1.25", "vggo.epoch_loss_count": "2", "vggo.epoch_seconds": "0.5",
		"vggo.best_metric": "miou", "vggo.best_value": "0.4375", "vggo.best_epoch": "2",
	}
	got, err := readProgress(legacy)
	want := Progress{Epoch: 3, EpochStep: 2, GlobalStep: 26, LossSum: 1.25, LossCount: 2, Seconds: 0.5,
		Best: Best{Metric: "miou", Value: 0.4375, Epoch: 2}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	legacy["vggo.best_epoch"], legacy["vggo.best_value"], legacy["vggo.best_metric"] = "-1", "-Inf", ""
	if got, err = readProgress(legacy); err != nil || got.Best != (Best{}) {
		t.Fatalf("no best yet: got %+v, %v", got.Best, err)
	}
	delete(legacy, "vggo.epoch_step")
	if _, err := readProgress(legacy); err == nil {
		t.Error("a missing key was accepted")
	}
}

func TestProgressRoundTrip(t *testing.T) {
	p := Progress{Epoch: 4, EpochStep: 1, GlobalStep: 33, LossSum: 0.1 + 0.2, LossCount: 1, GradNormSum: math.Pi,
		Seconds: 1e-9, Pending: &report.EpochRecord{Epoch: 4, Step: 32, LR: 0.01, TrainLoss: 1.5},
		Best: Best{Metric: "top1", Value: 1.0 / 3, Epoch: 3}, EvalsSinceBest: 1}
	tr := &Trainer{state: p}
	b, err := jsonProgress(tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readProgress(map[string]string{MetaProgress: b})
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("round trip: got %+v, %v; want %+v", got, err, p)
	}
	if (Best{}).Beats(math.NaN()) || !(Best{}).Beats(-5) || (Best{Value: 1, Epoch: 1}).Beats(1) {
		t.Error("Best.Beats: NaN never improves, anything beats no best, equal is not better")
	}
}

// Configurations written before the JSON keys were snake_case still read.
func TestConfigReadsLegacyKeys(t *testing.T) {
	old := `{"optimizer":{"Kind":"sgd","Momentum":0.9,"Dampening":0,"Nesterov":true,"Beta1":0,"Beta2":0,"Eps":0,"WeightDecay":0.0001},
"schedule":{"Kind":"poly","BaseLR":0.01,"TotalSteps":96,"WarmupSteps":8,"WarmupFactor":0.5,"StepSize":0,"Gamma":0,"Power":0,"MinLR":0}}`
	var c Config
	if err := json.Unmarshal([]byte(old), &c); err != nil {
		t.Fatal(err)
	}
	wantO := OptimizerConfig{Kind: "sgd", Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4}
	wantS := Schedule{Kind: "poly", BaseLR: 0.01, TotalSteps: 96, WarmupSteps: 8, WarmupFactor: 0.5}
	if c.Optimizer != wantO || c.Schedule != wantS {
		t.Errorf("got %+v %+v, want %+v %+v", c.Optimizer, c.Schedule, wantO, wantS)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back.Optimizer != wantO || back.Schedule != wantS {
		t.Errorf("round trip of %s: %+v %+v, %v", b, back.Optimizer, back.Schedule, err)
	}
	if r := wantS.Resolved(); r.Power != 0.9 || r.LR(50) != wantS.LR(50) {
		t.Errorf("Resolved: power %v, lr %v vs %v", r.Power, r.LR(50), wantS.LR(50))
	}
}

func TestRecipe(t *testing.T) {
	tests := []struct {
		arch, opt string
		demo      bool
		want      func(c Config) bool
	}{
		{"vgg19-unet", "", false, func(c Config) bool {
			return c.Optimizer.Kind == "sgd" && c.Optimizer.WeightDecay == 1e-4 && c.Schedule == Schedule{Kind: "poly", BaseLR: 0.01} && c.CropH == 512 && c.Data.Kind == "voc" && c.Model.Mult == 1
		}},
		{"vgg16", "", false, func(c Config) bool {
			return c.Optimizer.WeightDecay == 5e-4 && c.Schedule.Kind == "step" && c.CropH == 224 && c.Data.Kind == "folder"
		}},
		{"vgg19-unet", "", true, func(c Config) bool {
			return c.Optimizer.Kind == "adamw" && c.Schedule == Schedule{Kind: "cosine", BaseLR: 0.003} && c.WarmupEpochs == 1 && c.ClipGradNorm == 0.5 && c.Epochs == 12 && c.Model.Mult == 0.125 && c.CropH == 128
		}},
		{"vgg19-unet", "sgd", true, func(c Config) bool {
			return c.Optimizer.Kind == "sgd" && c.Optimizer.Momentum == 0.9 && c.Schedule.Kind == "poly" && c.WarmupEpochs == 0
		}},
		{"vgg16-segnet", "adam", false, func(c Config) bool {
			return c.Optimizer == DefaultOptimizerConfig("adam") && c.Schedule.Kind == "poly"
		}},
	}
	for _, tt := range tests {
		c, err := Recipe(tt.arch, tt.opt, tt.demo)
		if err != nil || !tt.want(c) {
			t.Errorf("Recipe(%q, %q, %v) = %+v, %v", tt.arch, tt.opt, tt.demo, c, err)
		}
	}
	if _, err := Recipe("resnet", "", false); err == nil {
		t.Error("Recipe(resnet): no error")
	}
}
