// Package web serves the IDE (DESIGN.md §7): the single-page app that
// `make web` builds with Vite into dist/app, embedded in the control plane
// binary. A clone that never ran `make web` embeds only
// dist/placeholder.html, so `go build` needs no Node; that page says how
// to build the real one.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Built reports whether the embedded assets are the real app.
func Built() bool {
	_, err := fs.Stat(dist, "dist/app/index.html")
	return err == nil
}

// contentSecurityPolicy allows only our own origin: Monaco's workers are
// files of the bundle, and its styles are set inline.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Handler serves the app: files of the bundle by path (hashed names under
// /assets/ cached for a year), and index.html for every other path, so the
// app's own routes survive a reload.
func Handler() http.Handler {
	root, index := "dist/app", "index.html"
	if !Built() {
		root, index = "dist", "placeholder.html"
	}
	sub, err := fs.Sub(dist, root)
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return handler(sub, index)
}

// handler serves the app in sub, with index as the page for app routes.
func handler(sub fs.FS, index string) http.Handler {
	page, err := fs.ReadFile(sub, index)
	if err != nil {
		panic(err) // the embed pattern guarantees the page
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name != "" && name != index {
			if strings.HasPrefix(name, "assets/") {
				h.Set("Cache-Control", "public, max-age=31536000, immutable")
			}
			if st, err := fs.Stat(sub, name); err == nil && !st.IsDir() {
				files.ServeHTTP(w, r)
				return
			}
			if gz, err := fs.ReadFile(sub, name+".gz"); err == nil {
				serveGzipped(w, r, name, gz)
				return
			}
			h.Del("Cache-Control")
			if path.Ext(name) != "" {
				http.NotFound(w, r)
				return
			}
		}
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
}

// serveGzipped sends an asset that `make web` stored gzipped (compress.mjs):
// as it is to a client that accepts gzip, which every browser does, and
// inflated to one that does not.
func serveGzipped(w http.ResponseWriter, r *http.Request, name string, gz []byte) {
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(gz)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(gz)
		}
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		http.Error(w, "corrupt asset", http.StatusInternalServerError)
		return
	}
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, zr)
	}
}

// acceptsGzip reads Accept-Encoding header values: gzip (or *) with a
// quality above zero.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(v, 64); err == nil {
						q = f
					}
				}
			}
			if q > 0 {
				return true
			}
		}
	}
	return false
}
