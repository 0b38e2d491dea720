// Package web serves the IDE (DESIGN.md §7): the single-page app that
// `make web` builds with Vite into dist/app, embedded in the control plane
// binary. A clone that never ran `make web` embeds only
// dist/placeholder.html, so `go build` needs no Node; that page says how
// to build the real one.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
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
	page, err := fs.ReadFile(sub, index)
	if err != nil {
		panic(err)
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
			if st, err := fs.Stat(sub, name); err == nil && !st.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					h.Set("Cache-Control", "public, max-age=31536000, immutable")
				}
				files.ServeHTTP(w, r)
				return
			}
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
