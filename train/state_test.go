package train

import (
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
