package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/infer"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes (logs) and reads (the test).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func post(t *testing.T, url, ctype string, body []byte) (int, string, []byte) {
	t.Helper()
	res, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

// TestServe: the mask served is byte for byte the one predict writes; JSON, multipart,
// model and health endpoints; bad requests get a 4xx JSON error and the server stays
// healthy; 16 concurrent clients, batched, get the same answers; one log line each.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	weights, demo := tinyUNet(t, dir)
	imgPath := filepath.Join(demo, "JPEGImages", "demo_0001.jpg")
	if code, _, errs := vggo(t, "predict", "--checkpoint", weights, "--input", imgPath, "--out", dir); code != 0 {
		t.Fatalf("predict: %d %s", code, errs)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "demo_0001.png"))
	jpg, _ := os.ReadFile(imgPath)

	m, err := infer.Open(weights, infer.Options{Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var logs syncBuffer
	s := newServer(m, serverConfig{MaxBody: 200_000, MaxPixels: 1 << 20, Queue: 8, BatchWait: 5 * time.Millisecond, Workers: 1, Log: &logs})
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.stop() }()

	code, ctype, body := post(t, ts.URL+"/v1/predict", "image/jpeg", jpg)
	if code != 200 || ctype != "image/png" || !bytes.Equal(body, want) {
		t.Fatalf("POST jpeg: %d %s, %d bytes; want 200 image/png identical to predict's %d bytes", code, ctype, len(body), len(want))
	}
	code, _, body = post(t, ts.URL+"/v1/predict?format=json", "image/jpeg", jpg)
	var summary maskJSON
	if err := json.Unmarshal(body, &summary); code != 200 || err != nil || summary.Width != 64 || summary.Height != 64 || len(summary.Classes) == 0 {
		t.Fatalf("format=json: %d %s", code, body)
	}
	total := 0
	for _, c := range summary.Classes {
		total += c.Pixels
	}
	if total != 64*64 {
		t.Errorf("format=json: pixel counts add to %d, want %d", total, 64*64)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("note", "x")
	fw, _ := mw.CreateFormFile("image", "demo.jpg")
	_, _ = fw.Write(jpg)
	_ = mw.Close()
	if code, _, body = post(t, ts.URL+"/v1/predict", mw.FormDataContentType(), mp.Bytes()); code != 200 || !bytes.Equal(body, want) {
		t.Errorf("multipart: %d, %d bytes", code, len(body))
	}

	// Bad requests.
	var bomb bytes.Buffer
	_ = png.Encode(&bomb, image.NewGray(image.Rect(0, 0, 2000, 2000))) // small file, 4 megapixels
	cases := []struct {
		name, ctype string
		body        []byte
		code        int
		want        string
	}{
		{"empty", "image/jpeg", nil, 400, "empty body"},
		{"text", "image/png", []byte("hello"), 415, "not a JPEG or PNG"},
		{"truncated", "image/jpeg", jpg[:len(jpg)/2], 400, "corrupt JPEG"},
		{"too big", "image/jpeg", make([]byte, 300_000), 413, "--max-body"},
		{"bomb", "image/png", bomb.Bytes(), 413, "megapixel limit"},
		{"content type", "text/plain", jpg, 415, "Content-Type"},
		{"no field", mw.FormDataContentType(), []byte("--" + mw.Boundary() + "--\r\n"), 400, `"image" field`},
	}
	for _, c := range cases {
		code, ctype, body := post(t, ts.URL+"/v1/predict", c.ctype, c.body)
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); code != c.code || ctype != "application/json" || err != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s %s; want %d and an error with %q", c.name, code, ctype, body, c.code, c.want)
		}
	}
	if res, err := http.Get(ts.URL + "/v1/predict"); err != nil || res.StatusCode != 405 {
		t.Errorf("GET /v1/predict: %v %v", err, res.StatusCode)
	}

	res, err := http.Get(ts.URL + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz after bad requests: %v %v", err, res)
	}
	res, _ = http.Get(ts.URL + "/v1/model")
	var info struct {
		Arch    string   `json:"arch"`
		Names   []string `json:"names"`
		Colors  []string `json:"colors"`
		Params  int      `json:"params"`
		Classes int      `json:"classes"`
		Input   struct {
			Stride int `json:"stride"`
		} `json:"input"`
	}
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil || info.Arch != "vgg19-unet" || len(info.Names) != 21 ||
		info.Colors[1] != "#800000" || info.Input.Stride != 16 || info.Params == 0 {
		t.Errorf("/v1/model: %v %+v", err, info)
	}
	res, _ = http.Get(ts.URL + "/")
	page, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !bytes.Contains(page, []byte(`id="file"`)) || bytes.Contains(page, []byte("http://")) || bytes.Contains(page, []byte("https://")) {
		t.Errorf("GET /: %d, the page must be self-contained", res.StatusCode)
	}

	// 16 concurrent clients.
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(ts.URL+"/v1/predict", "image/jpeg", bytes.NewReader(jpg))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || !bytes.Equal(b, want) {
				errs <- res.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent client: %s", e)
	}
	lines := strings.Count(logs.String(), "\n")
	if wantLines := 3 + len(cases) + 1 + 3 + 16; lines != wantLines {
		t.Errorf("%d access-log lines, want %d:\n%s", lines, wantLines, logs.String())
	}
	if !regexp.MustCompile(`(?m)^\S+ 127\.0\.0\.1:\d+ "POST /v1/predict\?format=json" 200 \d+B [\d.]+ms$`).MatchString(logs.String()) {
		t.Errorf("access log:\n%s", logs.String())
	}
}

// TestServeClassifier answers the JSON of predict --json.
func TestServeClassifier(t *testing.T) {
	net, err := graphs.New(graphs.Config{Arch: "vgg11", Mult: 1.0 / 64, Classes: 3, InputH: 32})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := infer.New(net, []string{"cat", "dog", "fox"}, infer.Options{Batch: 2})
	defer m.Close()
	s := newServer(m, serverConfig{MaxBody: 1 << 20, MaxPixels: 1 << 20, Queue: 4, Workers: 1, Log: io.Discard})
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.stop() }()
	var buf bytes.Buffer
	_ = png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 40, 30)))
	code, _, body := post(t, ts.URL+"/v1/predict", "image/png", buf.Bytes())
	var r classifyJSON
	if err := json.Unmarshal(body, &r); code != 200 || err != nil || len(r.Top5) != 3 || len(r.Probs) != 3 || r.Image != "upload" {
		t.Errorf("classifier: %d %s", code, body)
	}
}

// TestServeShutdown: the command serves until its context is cancelled, finishes the
// request in flight, and returns with status 0.
func TestServeShutdown(t *testing.T) {
	dir := t.TempDir()
	weights, demo := tinyUNet(t, dir)
	jpg, _ := os.ReadFile(filepath.Join(demo, "JPEGImages", "demo_0001.jpg"))
	ctx, cancel := context.WithCancelCause(context.Background())
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- runEnv(ctx, &env{stdout: &stdout, stderr: &stderr}, []string{"serve", "--checkpoint", weights, "--addr", "127.0.0.1:0",
			"--mode", "slide", "--tile", "16x16", "--stride", "16x16"})
	}()
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`on (http://\S+)`).FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("no address printed: %s %s", stdout.String(), stderr.String())
	}
	got := make(chan int, 1)
	go func() {
		res, err := http.Post(url+"/v1/predict", "image/jpeg", bytes.NewReader(jpg))
		if err != nil {
			got <- -1
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	time.Sleep(20 * time.Millisecond) // the request is in flight (16 tiles)
	cancel(context.Canceled)
	if code := <-got; code != 200 {
		t.Errorf("request in flight at shutdown: %d, want 200", code)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d, want 0\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}
