package report

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart geometry: 8×4 in at 150 dpi is 1200×600 pixels. The per-class chart
// grows wider with the class count so that every name stays legible.
const (
	chartDPI      = 150
	chartWidth    = 8 * vg.Inch
	chartHeight   = 4 * vg.Inch
	classSlot     = 0.30 * vg.Inch // per-class chart width per class
	classMargin   = 1.3 * vg.Inch  // per-class chart width besides the bars
	maxChartWidth = 60 * vg.Inch
	markerLimit   = 60 // series with more points are drawn as a bare line
)

// palette is matplotlib's "tab10", a colour-blind-aware default.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, // blue
	color.RGBA{0xff, 0x7f, 0x0e, 0xff}, // orange
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, // green
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, // red
	color.RGBA{0x94, 0x67, 0xbd, 0xff}, // purple
	color.RGBA{0x8c, 0x56, 0x4b, 0xff}, // brown
}

// glyphs pairs with palette so that series differ in shape as well as colour.
var glyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{},
	draw.PyramidGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{},
}

// metricSeries is one validation score of an EpochRecord.
type metricSeries struct {
	key   string // EpochRecord JSON key, also a Best.Metric value
	label string
	get   func(EpochRecord) *float64
}

// valSeries lists the validation scores val.png can show, in legend order.
var valSeries = []metricSeries{
	{"miou", "mIoU", func(r EpochRecord) *float64 { return r.MIoU }},
	{"pixel_acc", "pixel accuracy", func(r EpochRecord) *float64 { return r.PixelAcc }},
	{"mean_acc", "mean class accuracy", func(r EpochRecord) *float64 { return r.MeanAcc }},
	{"fwiou", "frequency-weighted IoU", func(r EpochRecord) *float64 { return r.FWIoU }},
	{"top1", "top-1 accuracy", func(r EpochRecord) *float64 { return r.Top1 }},
	{"top5", "top-5 accuracy", func(r EpochRecord) *float64 { return r.Top5 }},
}

// WriteCharts draws the charts of the run directory runDir as PNG files
// beside its inputs and returns the paths it wrote:
//
//	loss.png           training loss per epoch, and validation loss if any
//	lr.png             learning rate per epoch (log scale if it spans 100×)
//	val.png            validation scores per epoch, if any epoch has them,
//	                   with the best checkpoint marked
//	per_class_iou.png  per-class IoU of the best checkpoint, if best.json
//	                   has per-class IoU
//
// Charts are 1200×600 pixels (8×4 in at 150 dpi); the per-class chart gets
// 0.3 in more per class beyond 22 classes, up to 60 in. If an epoch appears
// more than once in metrics.jsonl (a resumed run), its last record is used.
// Each PNG is written atomically (temporary file, then rename), so a viewer
// never sees half a chart.
//
// A missing runDir or metrics.jsonl is an error wrapping [fs.ErrNotExist];
// a metrics.jsonl without records is an error too. A missing best.json only
// omits what needs it. If best.json is unreadable or one chart fails, the
// others are still written: the paths written come back with the error.
func WriteCharts(runDir string) ([]string, error) {
	fi, err := os.Stat(runDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("report: run directory %s does not exist: %w", runDir, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("report: %s is not a directory (want a vggo run directory)", runDir)
	}
	metricsPath := filepath.Join(runDir, MetricsFile)
	recs, err := ReadRecords(metricsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("report: %s has no %s (is it a vggo run directory?): %w", runDir, MetricsFile, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	recs = lastPerEpoch(recs)
	if len(recs) == 0 {
		return nil, fmt.Errorf("report: %s has no records yet (no epoch has finished)", metricsPath)
	}

	var errs []error
	best, err := ReadBest(filepath.Join(runDir, BestFile))
	bestp := &best
	if err != nil {
		bestp = nil
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}

	run := runName(runDir)
	type chart struct {
		file  string
		width vg.Length
		build func() (*plot.Plot, error)
	}
	charts := []chart{
		{LossChart, chartWidth, func() (*plot.Plot, error) { return lossPlot(recs, run) }},
		{LRChart, chartWidth, func() (*plot.Plot, error) { return lrPlot(recs, run) }},
		{ValChart, chartWidth, func() (*plot.Plot, error) { return valPlot(recs, bestp, run) }},
	}
	if bestp != nil {
		w := min(max(chartWidth, classSlot*vg.Length(len(best.PerClass))+classMargin), maxChartWidth)
		charts = append(charts, chart{PerClassChart, w, func() (*plot.Plot, error) { return perClassPlot(best, run, w) }})
	}

	var written []string
	for _, c := range charts {
		path := filepath.Join(runDir, c.file)
		p, err := c.build()
		if err == nil && p != nil {
			err = savePNG(p, c.width, chartHeight, path)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("report: write %s: %w", path, err))
			continue
		}
		if p != nil {
			written = append(written, path)
		}
	}
	return written, errors.Join(errs...)
}

// lastPerEpoch keeps the last record of each epoch, sorted by epoch.
func lastPerEpoch(recs []EpochRecord) []EpochRecord {
	at := make(map[int]int, len(recs))
	var out []EpochRecord
	for _, r := range recs {
		if i, ok := at[r.Epoch]; ok {
			out[i] = r
			continue
		}
		at[r.Epoch] = len(out)
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b EpochRecord) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return out
}

func runName(runDir string) string {
	if abs, err := filepath.Abs(runDir); err == nil {
		runDir = abs
	}
	return filepath.Base(runDir)
}

func lossPlot(recs []EpochRecord, run string) (*plot.Plot, error) {
	p := newPlot("Loss — "+run, "epoch", "loss")
	train := make(plotter.XYs, len(recs))
	var val plotter.XYs
	for i, r := range recs {
		train[i] = plotter.XY{X: float64(r.Epoch), Y: r.TrainLoss}
		if r.ValLoss != nil {
			val = append(val, plotter.XY{X: float64(r.Epoch), Y: *r.ValLoss})
		}
	}
	if err := addSeries(p, "train loss (epoch mean)", train, 0); err != nil {
		return nil, err
	}
	if len(val) > 0 {
		if err := addSeries(p, "validation loss", val, 1); err != nil {
			return nil, err
		}
	}
	padY(p, 0, math.Inf(1))
	return p, nil
}

func lrPlot(recs []EpochRecord, run string) (*plot.Plot, error) {
	p := newPlot("Learning rate — "+run, "epoch", "learning rate (end of epoch)")
	xys := make(plotter.XYs, len(recs))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, r := range recs {
		xys[i] = plotter.XY{X: float64(r.Epoch), Y: r.LR}
		lo, hi = min(lo, r.LR), max(hi, r.LR)
	}
	if err := addSeries(p, "", xys, 0); err != nil {
		return nil, err
	}
	if lo > 0 && hi/lo >= 100 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Title.Text += " (log scale)"
	} else {
		padY(p, 0, math.Inf(1))
	}
	return p, nil
}

// valPlot returns nil if no epoch has a validation score.
func valPlot(recs []EpochRecord, best *Best, run string) (*plot.Plot, error) {
	p := newPlot("Validation — "+run, "epoch", "score")
	p.Legend.Top = false // scores rise: the lower right is usually empty
	drawn := 0
	for _, s := range valSeries {
		var xys plotter.XYs
		for _, r := range recs {
			if v := s.get(r); v != nil {
				xys = append(xys, plotter.XY{X: float64(r.Epoch), Y: *v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		if err := addSeries(p, s.label, xys, drawn); err != nil {
			return nil, err
		}
		drawn++
		if best != nil && best.Metric == s.key {
			mark, err := plotter.NewScatter(plotter.XYs{{X: float64(best.Epoch), Y: best.Value}})
			if err != nil {
				return nil, err
			}
			mark.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(6), Shape: draw.RingGlyph{}}
			p.Add(mark)
			p.Legend.Add(fmt.Sprintf("best %s %.4f (epoch %d)", s.label, best.Value, best.Epoch), mark)
		}
	}
	if drawn == 0 {
		return nil, nil
	}
	padY(p, 0, 1)
	return p, nil
}

// perClassPlot returns nil if no class has an IoU.
func perClassPlot(b Best, run string, width vg.Length) (*plot.Plot, error) {
	var shown []ClassIoU // classes absent from both ground truth and prediction are left out
	for _, c := range b.PerClass {
		if c.IoU != nil {
			shown = append(shown, c)
		}
	}
	b.PerClass = shown
	n := len(b.PerClass)
	names := make([]string, n)
	ious := make(plotter.Values, n)
	var values, absent, accs plotter.XYLabels
	var sum float64
	present := 0
	for i, c := range b.PerClass {
		names[i] = c.Name
		x := float64(i)
		if c.IoU == nil {
			absent.XYs = append(absent.XYs, plotter.XY{X: x, Y: 0.02})
			absent.Labels = append(absent.Labels, "absent")
			continue
		}
		ious[i] = *c.IoU
		sum += *c.IoU
		present++
		values.XYs = append(values.XYs, plotter.XY{X: x, Y: *c.IoU})
		values.Labels = append(values.Labels, strconv.FormatFloat(*c.IoU, 'f', 2, 64))
		if c.Acc != nil {
			accs.XYs = append(accs.XYs, plotter.XY{X: x, Y: *c.Acc})
		}
	}
	if present == 0 {
		return nil, nil
	}

	title := fmt.Sprintf("Per-class IoU at the best checkpoint (epoch %d, %s %.4f) — %s", b.Epoch, b.Metric, b.Value, run)
	p := newPlot(title, "", "IoU")
	bars, err := plotter.NewBarChart(ious, (width-classMargin)/vg.Length(n)*0.7)
	if err != nil {
		return nil, err
	}
	bars.Color = palette[0]
	bars.LineStyle.Width = 0
	p.Add(bars)

	if len(accs.XYs) > 0 {
		s, err := plotter.NewScatter(accs)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(2.5), Shape: draw.PyramidGlyph{}}
		p.Add(s)
		p.Legend.Add("class accuracy", s)
	}

	mean := sum / float64(present)
	line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: mean}, {X: float64(n) - 0.5, Y: mean}})
	if err != nil {
		return nil, err
	}
	line.LineStyle = draw.LineStyle{Color: palette[3], Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
	p.Add(line)
	legend := fmt.Sprintf("mean IoU %.4f", mean)
	if present < n {
		legend += fmt.Sprintf(" (%d of %d classes present)", present, n)
	}
	p.Legend.Add(legend, line)

	if err := addLabels(p, values, func(s *font.Font) { s.Size = 7 }, 0, draw.XCenter, draw.YBottom, color.Black); err != nil {
		return nil, err
	}
	if err := addLabels(p, absent, nil, math.Pi/2, draw.XLeft, draw.YCenter, color.Gray{0x70}); err != nil {
		return nil, err
	}

	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Y.Padding = vg.Points(5) // NominalX sized it for an unrotated first name
	// Headroom above 1 keeps the legend clear of the bars.
	p.Y.Min, p.Y.Max = 0, 1.2
	p.Y.Tick.Marker = plot.ConstantTicks{
		{Value: 0, Label: "0"}, {Value: 0.2, Label: "0.2"}, {Value: 0.4, Label: "0.4"},
		{Value: 0.6, Label: "0.6"}, {Value: 0.8, Label: "0.8"}, {Value: 1, Label: "1"},
	}
	return p, nil
}

func addLabels(p *plot.Plot, d plotter.XYLabels, size func(*font.Font), rot float64, xa draw.XAlignment, ya draw.YAlignment, c color.Color) error {
	if len(d.XYs) == 0 {
		return nil
	}
	l, err := plotter.NewLabels(d)
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		s := &l.TextStyle[i]
		s.Font = sans(8)
		if size != nil {
			size(&s.Font)
		}
		s.Rotation, s.XAlign, s.YAlign, s.Color = rot, xa, ya, c
	}
	l.Offset = vg.Point{Y: vg.Points(1.5)}
	p.Add(l)
	return nil
}

// newPlot returns a plot with a title, axis labels, a light grid, integer
// epoch ticks on X and sans-serif text throughout.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(12)
	p.Title.TextStyle.Font.Weight = xfont.WeightBold
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(10)
		a.Tick.Label.Font = sans(9)
	}
	p.X.Tick.Marker = epochTicks
	p.Y.Tick.Marker = valueTicks
	p.Legend.TextStyle.Font = sans(9)
	p.Legend.Top = true
	p.Legend.Padding = vg.Points(2)
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{0xe0}
	g.Horizontal.Color = color.Gray{0xe0}
	p.Add(g)
	return p
}

func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// addSeries adds a line with point markers; a single point is a marker only,
// and a series longer than markerLimit is a line only. An empty name adds no
// legend entry.
func addSeries(p *plot.Plot, name string, xys plotter.XYs, i int) error {
	col := palette[i%len(palette)]
	var thumbs []plot.Thumbnailer
	if len(xys) > 1 {
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.5)}
		p.Add(l)
		thumbs = append(thumbs, l)
	}
	if len(xys) <= markerLimit {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(2.5), Shape: glyphs[i%len(glyphs)]}
		p.Add(s)
		thumbs = append(thumbs, s)
	}
	if name != "" {
		p.Legend.Add(name, thumbs...)
	}
	return nil
}

// padY widens the Y range by 5% each side, but not past [lo, hi] when the
// data lies inside it. A single value gets ±50% (±1 if zero).
func padY(p *plot.Plot, lo, hi float64) {
	a := &p.Y
	if math.IsInf(a.Min, 0) || math.IsInf(a.Max, 0) {
		return
	}
	pad := (a.Max - a.Min) * 0.05
	if pad == 0 {
		pad = math.Abs(a.Max) * 0.5
		if pad == 0 {
			pad = 1
		}
	}
	if a.Min >= lo {
		a.Min = max(a.Min-pad, lo)
	} else {
		a.Min -= pad
	}
	if a.Max <= hi {
		a.Max = min(a.Max+pad, hi)
	} else {
		a.Max += pad
	}
}

// niceTicks labels at most max values spaced 1, 2, 2.5 or 5 × 10^k apart
// (whole numbers only if integer). gonum's DefaultTicks labels only about
// three values, often at odd steps.
type niceTicks struct {
	max     int
	integer bool
}

var (
	epochTicks = niceTicks{max: 10, integer: true}
	valueTicks = niceTicks{max: 8}
)

func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if !(span > 0) || math.IsInf(span, 0) {
		return nil
	}
	exp := int(math.Floor(math.Log10(span / float64(t.max))))
	var step float64
	for _, m := range []float64{1, 2, 2.5, 5, 10, 20, 25, 50} {
		step = m * math.Pow10(exp)
		if t.integer && step != math.Trunc(step) {
			continue
		}
		if span/step <= float64(t.max) {
			break
		}
	}
	decimals := 0 // the fewest that show step exactly
	for ; decimals < 15; decimals++ {
		if s := step * math.Pow10(decimals); math.Abs(s-math.Round(s)) < 1e-6*s {
			break
		}
	}
	var ticks []plot.Tick
	first := math.Ceil(lo/step) * step
	for i := 0; ; i++ {
		v := first + float64(i)*step
		if v > hi+step*1e-9 {
			break
		}
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return ticks
}

// logTicks labels the powers of ten in [lo, hi], with unlabelled minor
// ticks between them. Unlike gonum's LogTicks it labels a lowest value that
// is itself a power of ten.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := int(math.Floor(math.Log10(lo))); e <= int(math.Ceil(math.Log10(hi))); e++ {
		d := math.Pow10(e)
		for m := 1; m < 10; m++ {
			v := float64(m) * d
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 {
				t.Label = strconv.FormatFloat(d, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// savePNG draws p at w×h and writes it atomically to path.
func savePNG(p *plot.Plot, w, h vg.Length, path string) error {
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(chartDPI))
	if err := drawPlot(p, c); err != nil {
		return err
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
		return err
	})
}

// drawPlot draws p on c. gonum/plot panics on some degenerate inputs; a
// chart is not worth crashing a training run for, so a panic becomes an
// error.
func drawPlot(p *plot.Plot, c *vgimg.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing failed: %v", r)
		}
	}()
	p.Draw(draw.New(c))
	return nil
}
