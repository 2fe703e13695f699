package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/infer"
	"github.com/vggo/vggo/label"
)

//go:embed serve.html
var servePage []byte

func serveCmd() *command {
	c := &command{
		name:  "serve",
		usage: "--checkpoint FILE [--addr 127.0.0.1:8080] [--batch N] [--max-body SIZE] [--max-pixels N] [--mode ...] [--tile HxW] [--tta]",
		short: "serve a model over HTTP, with a page to try it in a browser",
		long:  serveHelp,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		ckpt := fs.String("checkpoint", "", "training checkpoint or weights file (.safetensors)")
		addr := fs.String("addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
		batch := fs.Int("batch", 4, "most images per forward pass")
		batchWait := fs.Duration("batch-wait", 2*time.Millisecond, "how long a request waits for others to batch with")
		queue := fs.Int("queue", 32, "most requests decoded and waiting at once")
		conc := fs.Int("concurrency", 1, "forward passes at once (each with its own graphs)")
		maxBody := fs.String("max-body", "32MiB", "largest request body (B, KiB, MiB suffixes)")
		maxPixels := fs.Int("max-pixels", 24_000_000, "largest image, in pixels (width x height)")
		grace := fs.Duration("shutdown-timeout", 2*time.Minute, "on SIGINT/SIGTERM, how long requests in flight may take")
		mf := addModelFlags(fs)
		inf := addInferFlags(fs)
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		body, err := parseBytes(*maxBody)
		if err != nil {
			return usagef("--max-body: %v", err)
		}
		if *batch < 1 || *queue < 1 || *conc < 1 || *maxPixels < 1 || *batchWait < 0 {
			return usagef("--batch, --queue, --concurrency and --max-pixels must be >= 1, --batch-wait >= 0")
		}
		opt, err := inf.options()
		if err != nil {
			return err
		}
		opt.Batch, opt.Concurrency = *batch, *conc
		m, err := mf.open(*ckpt, opt)
		if err != nil {
			return err
		}
		defer m.Close()
		s := newServer(m, serverConfig{MaxBody: body, MaxPixels: *maxPixels, Queue: *queue, BatchWait: *batchWait,
			Workers: *conc, Log: e.stderr})
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: log.New(e.stderr, "vggo serve: ", 0)}
		info := m.Info()
		fmt.Fprintf(e.stdout, "serving %s (%s, %d classes) on http://%s\n", info.Config.Arch, info.Task, info.Config.Classes, ln.Addr())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			s.stop()
			return err
		case <-ctx.Done():
		}
		fmt.Fprintf(e.stderr, "vggo serve: %v: finishing the requests in flight\n", context.Cause(ctx))
		sctx, cancel := context.WithTimeout(context.Background(), *grace)
		defer cancel()
		err = srv.Shutdown(sctx)
		s.stop()
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		fmt.Fprintln(e.stderr, "vggo serve: stopped")
		return nil
	}
	return c
}

// parseBytes reads a size such as 32MiB, 512KiB, 1000000 or 1GiB.
func parseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%q: want a positive size like 32MiB", s)
	}
	return v * mult, nil
}

type serverConfig struct {
	MaxBody   int64
	MaxPixels int
	Queue     int           // requests decoded and waiting at most
	BatchWait time.Duration // how long a batch waits to fill
	Workers   int           // goroutines running batches (the model's concurrency)
	Log       io.Writer     // access log
}

// server answers the HTTP API. Handlers decode the upload and queue a job; workers take
// jobs off the queue in batches and run them through the model.
type server struct {
	m     *infer.Model
	cfg   serverConfig
	mux   *http.ServeMux
	slots chan struct{} // one per decoded image held (cfg.Queue)
	jobs  chan *job
	wg    sync.WaitGroup
	once  sync.Once
	logMu sync.Mutex
}

type job struct {
	ctx   context.Context
	img   *image.RGBA
	mask  *image.Paletted
	probs []float32
	err   error
	done  chan struct{}
}

func newServer(m *infer.Model, cfg serverConfig) *server {
	s := &server{m: m, cfg: cfg, mux: http.NewServeMux(), slots: make(chan struct{}, cfg.Queue), jobs: make(chan *job, cfg.Queue)}
	s.mux.HandleFunc("POST /v1/predict", s.predict)
	s.mux.HandleFunc("GET /v1/model", s.model)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		_, _ = w.Write(servePage)
	})
	for range max(1, cfg.Workers) {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

// stop ends the workers once the queue is drained (after the HTTP server has stopped).
func (s *server) stop() {
	s.once.Do(func() { close(s.jobs) })
	s.wg.Wait()
}

// ServeHTTP routes the request and writes its access-log line.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(lw, r)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.cfg.Log, "%s %s %q %d %dB %.1fms\n", start.UTC().Format(time.RFC3339), r.RemoteAddr,
		r.Method+" "+r.URL.RequestURI(), lw.status, lw.bytes, float64(time.Since(start).Microseconds())/1000)
}

type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *logWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// httpError is an error with its status code.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func (s *server) predict(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "png" {
		writeError(w, errorf(http.StatusBadRequest, "format %q: want json or png", format))
		return
	}
	select { // hold at most Queue decoded images
	case s.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-s.slots }()
	name, b, err := s.readUpload(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	img, err := data.DecodeImageMax(b, s.cfg.MaxPixels)
	b = nil
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, data.ErrTooLarge):
			code = http.StatusRequestEntityTooLarge
		case errors.Is(err, data.ErrFormat):
			code = http.StatusUnsupportedMediaType
		}
		writeError(w, errorf(code, "%s", strings.TrimPrefix(err.Error(), "data: ")))
		return
	}
	j := &job{ctx: r.Context(), img: img, done: make(chan struct{})}
	s.jobs <- j // never blocks: the queue holds as many jobs as there are slots
	select {
	case <-j.done:
	case <-r.Context().Done():
		return
	}
	if j.err != nil {
		writeError(w, j.err)
		return
	}
	if s.m.Task() == label.Classification {
		p := &infer.Probs{Classes: len(j.probs), H: 1, W: 1, Data: j.probs}
		writeJSON(w, http.StatusOK, classifyJSON{Image: name, Top5: s.m.Top(p, 5), Probs: j.probs})
		return
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, maskSummary(j.mask, s.m.ClassNames()))
		return
	}
	var buf bytes.Buffer
	if err := encodeMask(&buf, j.mask); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// readUpload returns the uploaded file's name and bytes: the body itself, or the
// multipart field "image", read into memory within MaxBody.
func (s *server) readUpload(w http.ResponseWriter, r *http.Request) (string, []byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	limitErr := func(err error) error {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return errorf(http.StatusRequestEntityTooLarge, "request body over the %d-byte limit (--max-body)", s.cfg.MaxBody)
		}
		return errorf(http.StatusBadRequest, "reading the upload: %v", err)
	}
	switch ct {
	case "image/jpeg", "image/png", "application/octet-stream", "":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return "", nil, limitErr(err)
		}
		if len(b) == 0 {
			return "", nil, errorf(http.StatusBadRequest, "empty body: send the image bytes (Content-Type image/jpeg or image/png) or a multipart field \"image\"")
		}
		return "upload", b, nil
	case "multipart/form-data":
		if params["boundary"] == "" {
			return "", nil, errorf(http.StatusBadRequest, "multipart body without a boundary")
		}
		mr, err := r.MultipartReader()
		if err != nil {
			return "", nil, errorf(http.StatusBadRequest, "multipart: %v", err)
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return "", nil, errorf(http.StatusBadRequest, "multipart form without an \"image\" field")
			}
			if err != nil {
				return "", nil, limitErr(err)
			}
			if p.FormName() != "image" {
				continue
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return "", nil, limitErr(err)
			}
			if len(b) == 0 {
				return "", nil, errorf(http.StatusBadRequest, "the \"image\" field is empty")
			}
			name := p.FileName()
			if name == "" {
				name = "upload"
			}
			return name, b, nil
		}
	default:
		return "", nil, errorf(http.StatusUnsupportedMediaType, "Content-Type %q: send image/jpeg, image/png or multipart/form-data", ct)
	}
}

// work runs queued jobs: it takes one, waits up to BatchWait for more (up to the
// model's batch), and runs them together.
func (s *server) work() {
	defer s.wg.Done()
	batch := s.m.Options().Batch
	for j := range s.jobs {
		jobs := []*job{j}
		if batch > 1 {
			timer := time.NewTimer(s.cfg.BatchWait)
		fill:
			for len(jobs) < batch {
				select {
				case j, ok := <-s.jobs:
					if !ok {
						break fill
					}
					jobs = append(jobs, j)
				case <-timer.C:
					break fill
				}
			}
			timer.Stop()
		}
		s.run(jobs)
	}
}

// run runs a batch, leaving out the requests whose clients have gone.
func (s *server) run(jobs []*job) {
	var live []*job
	var imgs []image.Image
	for _, j := range jobs {
		if err := j.ctx.Err(); err != nil {
			j.err = err
			close(j.done)
			continue
		}
		live = append(live, j)
		imgs = append(imgs, j.img)
	}
	if len(live) == 0 {
		return
	}
	// The batch runs to the end even on shutdown: its requests are in flight.
	ctx := context.Background()
	if s.m.Task() == label.Classification {
		tops, err := s.m.ClassifyBatch(ctx, imgs, len(s.m.ClassNames()))
		for i, j := range live {
			if err == nil {
				j.probs = make([]float32, len(tops[i]))
				for _, c := range tops[i] {
					j.probs[c.Index] = float32(c.Prob)
				}
			}
			j.err = err
			close(j.done)
		}
		return
	}
	masks, err := s.m.SegmentBatch(ctx, imgs)
	for i, j := range live {
		if err == nil {
			j.mask = masks[i]
		}
		j.err = err
		close(j.done)
	}
}

// classArea is one class of a mask summary.
type classArea struct {
	Index  int     `json:"index"`
	Class  string  `json:"class"`
	Pixels int     `json:"pixels"`
	Share  float64 `json:"share"`
}

type maskJSON struct {
	Width   int         `json:"width"`
	Height  int         `json:"height"`
	Classes []classArea `json:"classes"`
}

// maskSummary lists the classes present in a mask, most pixels first.
func maskSummary(mask *image.Paletted, names []string) maskJSON {
	w, h := mask.Rect.Dx(), mask.Rect.Dy()
	var hist [256]int
	for y := range h {
		for _, v := range mask.Pix[y*mask.Stride:][:w] {
			hist[v]++
		}
	}
	out := maskJSON{Width: w, Height: h, Classes: []classArea{}}
	for c, n := range hist {
		if n > 0 && c < len(names) {
			out.Classes = append(out.Classes, classArea{Index: c, Class: names[c], Pixels: n, Share: float64(n) / float64(w*h)})
		}
	}
	for i := 1; i < len(out.Classes); i++ { // insertion sort, most pixels first
		for k := i; k > 0 && out.Classes[k].Pixels > out.Classes[k-1].Pixels; k-- {
			out.Classes[k], out.Classes[k-1] = out.Classes[k-1], out.Classes[k]
		}
	}
	return out
}

// model describes the model: GET /v1/model.
func (s *server) model(w http.ResponseWriter, r *http.Request) {
	info, opt := s.m.Info(), s.m.Options()
	names := s.m.ClassNames()
	colors := make([]string, len(names))
	for i, c := range s.m.Colors() {
		colors[i] = fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B)
	}
	input := map[string]any{"max_pixels": s.cfg.MaxPixels, "max_body": s.cfg.MaxBody, "formats": []string{"image/jpeg", "image/png"}}
	if info.Task == label.Segmentation {
		input["stride"] = info.Stride
		input["note"] = fmt.Sprintf("any size; padded to a multiple of %d, tiled above %dx%d", info.Stride, opt.TileH, opt.TileW)
	} else {
		input["height"], input["width"] = info.Config.InputH, info.Config.InputW
		input["note"] = "any size; the shorter side is resized and the centre cropped"
	}
	out := map[string]any{
		"arch": info.Config.Arch, "task": info.Task.String(), "width_mult": info.Config.Mult,
		"classes": len(names), "names": names, "colors": colors, "input": input, "params": info.Params,
		"epoch": info.Epoch, "inference": map[string]any{"mode": opt.Mode.String(), "tile": []int{opt.TileH, opt.TileW},
			"stride": []int{opt.StrideH, opt.StrideW}, "tta": opt.TTA, "batch": opt.Batch},
	}
	if info.Metric != "" {
		out["score"] = map[string]any{"metric": info.Metric, "value": info.Score}
	}
	writeJSON(w, http.StatusOK, out)
}

const serveHelp = `Serve runs a model behind HTTP. It binds 127.0.0.1 unless --addr says otherwise.

	POST /v1/predict   the image as the body (Content-Type image/jpeg or image/png), or a
	                   multipart form with the image in the field "image".
	                   Segmentation: 200 image/png, the palette mask vggo predict writes for
	                   the same file (pixel value = class index, VOC colours);
	                   ?format=json: {"width", "height", "classes": [{"index", "class",
	                   "pixels", "share"}]}, the classes present, most pixels first.
	                   Classifiers: the JSON of vggo predict --json:
	                   {"image", "top5": [{"class", "index", "prob"}], "probs": [...]}.
	GET  /v1/model     architecture, class names and colours, input constraints, parameter
	                   count, the checkpoint's epoch and best score.
	GET  /healthz      200 while the server runs.
	GET  /             a page to pick an image and see the mask over it (or the top 5).

JPEG EXIF orientation is applied, as in predict. Large images are tiled as in predict
(--mode, --tile, --stride; --tta for test-time augmentation). Bad requests (empty, not
an image, truncated, over --max-body, a header claiming more than --max-pixels) get a
4xx with {"error": "..."}; uploads are read into memory, never written to disk.

Requests wait in a queue of --queue; whole images of the same size are batched, up to
--batch per forward pass, after waiting at most --batch-wait for company; --concurrency
passes run at once. At most --queue decoded images are held at a time; further clients
wait. Memory: the model's compiled graphs (about 1 GiB per 512x512 pass of a full-width
vgg19-unet, times the batch) plus --queue images of up to --max-pixels.

SIGINT or SIGTERM stops accepting connections, finishes the requests in flight and
exits 0. One access-log line per request goes to stderr.

Examples:
	vggo serve --checkpoint runs/unet/best.safetensors
	curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' localhost:8080/v1/predict -o mask.png
	curl -F image=@photo.jpg 'localhost:8080/v1/predict?format=json'`
