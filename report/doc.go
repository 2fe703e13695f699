// Package report records a vggo run's per-epoch metrics and best checkpoint
// in its run directory, and draws them as PNG training charts.
//
// A run directory holds:
//
//	metrics.jsonl  one EpochRecord per line, appended by AppendRecord
//	best.json      the best checkpoint so far, a Best written by WriteBest
//
// [WriteCharts] reads both and writes loss.png, lr.png, val.png and
// per_class_iou.png beside them, drawn with gonum.org/v1/plot. The package
// does not import gorgonia.
package report

// File names inside a run directory.
const (
	MetricsFile   = "metrics.jsonl"
	BestFile      = "best.json"
	LossChart     = "loss.png"
	LRChart       = "lr.png"
	ValChart      = "val.png"
	PerClassChart = "per_class_iou.png"
)
