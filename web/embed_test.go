package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// Assets that make web stored gzipped go out as they are to a browser and
// inflated to a client that does not accept gzip; plain files, the app's
// routes and missing files behave as before.
func TestHandlerServesGzippedAssets(t *testing.T) {
	code := []byte(strings.Repeat("console.log('sluice');\n", 200))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(code)
	_ = zw.Close()
	h := handler(fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><title>Sluice</title>")},
		"assets/app-A1.js.gz": {Data: gz.Bytes()},
		"assets/tiny-B2.js":   {Data: []byte("1")},
	}, "index.html")
	get := func(method, path, accept string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := get("GET", "/assets/app-A1.js", "gzip, deflate, br")
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" || !bytes.Equal(rec.Body.Bytes(), gz.Bytes()) {
		t.Errorf("gzip accepted: %d, Content-Encoding %q, %d bytes; want 200, gzip, the stored %d bytes", rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len(), gz.Len())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q, want text/javascript (module scripts are refused otherwise under nosniff)", ct)
	}
	if rec.Header().Get("Vary") != "Accept-Encoding" || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("headers %v", rec.Header())
	}
	for _, accept := range []string{"", "identity", "gzip;q=0", "br"} {
		rec = get("GET", "/assets/app-A1.js", accept)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "" || !bytes.Equal(rec.Body.Bytes(), code) {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, %d bytes; want the inflated %d", accept, rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len(), len(code))
		}
	}
	if rec = get("HEAD", "/assets/app-A1.js", "gzip"); rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != strconv.Itoa(gz.Len()) {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	if rec = get("GET", "/assets/tiny-B2.js", "gzip"); rec.Code != 200 || rec.Body.String() != "1" || rec.Header().Get("Content-Encoding") != "" {
		t.Errorf("plain asset: %d %q %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Encoding"))
	}
	if rec = get("GET", "/assets/gone-Z9.js", "gzip"); rec.Code != http.StatusNotFound || strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("missing asset: %d, Cache-Control %q; want 404, not cached for a year", rec.Code, rec.Header().Get("Cache-Control"))
	}
	if rec = get("GET", "/projects/p/pipelines", "gzip"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "<title>Sluice") {
		t.Errorf("app route: %d %q", rec.Code, rec.Body.String())
	}
	if b, _ := io.ReadAll(get("GET", "/", "").Body); !strings.Contains(string(b), "Sluice") {
		t.Errorf("index: %q", b)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"gzip": true, "gzip, deflate, br, zstd": true, "br;q=1.0, gzip;q=0.8": true, "*": true, "x-gzip": true,
		"": false, "identity": false, "gzip;q=0": false, "br": false, "GZIP ; q=0.5": true,
	} {
		if got := acceptsGzip([]string{in}); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}
