//go:build browser

// The page of vggo serve in a real browser: headless Chromium (Debian's chromium
// package), driven over the DevTools protocol by chromedp.
//
//	go test -tags browser -run TestServePage -v ./cmd/vggo
//
// VGGO_CHROMIUM names the browser (default /usr/bin/chromium). VGGO_SERVE_CHECKPOINT and
// VGGO_SERVE_IMAGE replace the untrained model and the demo image; VGGO_SCREENSHOT
// writes a PNG of the page there (the README's screenshot).

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vggo/vggo/infer"
)

func TestServePage(t *testing.T) {
	browser := os.Getenv("VGGO_CHROMIUM")
	if browser == "" {
		browser = "/usr/bin/chromium"
	}
	if _, err := os.Stat(browser); err != nil {
		t.Fatalf("no browser at %s (apt-get install chromium, or set VGGO_CHROMIUM): %v", browser, err)
	}
	dir := t.TempDir()
	weights, demo := tinyUNet(t, dir)
	img := filepath.Join(demo, "JPEGImages", "demo_0001.jpg")
	if p := os.Getenv("VGGO_SERVE_CHECKPOINT"); p != "" {
		weights = p
	}
	if p := os.Getenv("VGGO_SERVE_IMAGE"); p != "" {
		img = p
	}
	m, err := infer.Open(weights, infer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := newServer(m, serverConfig{MaxBody: 32 << 20, MaxPixels: 24_000_000, Queue: 4, Workers: 1, Log: os.Stderr})
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.stop() }()

	// What the page should show: the classes of the mask, most pixels first.
	jpg, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(ts.URL+"/v1/predict?format=json", "image/jpeg", bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	var want maskJSON
	if err := json.NewDecoder(res.Body).Decode(&want); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	coloured := 0
	for _, c := range want.Classes {
		if c.Index != 0 {
			coloured += c.Pixels
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")),
		chromedp.WindowSize(1000, 640),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	err = chromedp.Do(ctx,
		chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.CSS("#model[data-loaded]")),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{img}),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	legend, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#legend li")].map(li => li.dataset.class)`))
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-overlay"))
	if err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.getElementById("view").width`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range want.Classes {
		names = append(names, c.Class)
	}
	if len(legend) == 0 || !equalStrings(legend, names) {
		t.Errorf("legend %v, want the classes of the mask %v", legend, names)
	}
	if overlay.Value != itoa(coloured) || width != want.Width {
		t.Errorf("overlay on %s pixels of a %d-wide canvas; want %d pixels (the mask's non-background), %d wide", overlay.Value, width, coloured, want.Width)
	}
	if out := os.Getenv("VGGO_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
