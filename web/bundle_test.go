package web

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// The IDE's acceptance bounds what a browser downloads before the app can
// draw: the initial JS, without Monaco and its workers, which the editor
// page loads lazily (bench/targets.json, "ide-initial-js"). initialChunks
// finds those files in the built app; BenchmarkInitialBundle gzips them so
// `make bench` reports the figure.

var (
	// tagRE finds the <script> and <link> tags of index.html.
	tagRE = regexp.MustCompile(`(?is)<(script|link)\b([^>]*)>`)
	// attrRE finds one attribute of a tag, quoted or not, or a bare name.
	attrRE = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>` + "`" + `]+)))?`)
	// staticImportRE finds the static imports and re-exports of a minified
	// ES module (import"./a.js", import{x as y}from"./b.js", export*from
	// "./c.js"). A dynamic import("./d.js") does not match: "(" follows
	// the keyword, and the browser fetches such a chunk only when the code
	// runs, as the IDE does with Monaco.
	staticImportRE = regexp.MustCompile(`(?:^|[^\w$.])(?:import|export)\s*(?:[\w$*{}\s,]*?\bfrom\s*)?["']([^"'\s]+\.js)["']`)
)

// initialChunks returns the JS files of the built app in app (the root of
// web/dist/app) that a browser loads before the IDE can draw, sorted: the
// module scripts and modulepreload links of index.html, and every chunk
// they import statically, transitively. Chunks that are only imported
// dynamically (Monaco, its languages) and the workers are left out.
func initialChunks(app fs.FS) ([]string, error) {
	index, err := fs.ReadFile(app, "index.html")
	if err != nil {
		return nil, fmt.Errorf("the built app has no index.html (run make web): %w", err)
	}
	var queue []string
	for _, m := range tagRE.FindAllStringSubmatch(string(index), -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			attrs[strings.ToLower(a[1])] = a[2] + a[3] + a[4]
		}
		var ref string
		switch {
		case strings.EqualFold(m[1], "script") && attrs["type"] == "module":
			ref = attrs["src"]
		case strings.EqualFold(m[1], "link") && slices.Contains(strings.Fields(strings.ToLower(attrs["rel"])), "modulepreload"):
			ref = attrs["href"]
		}
		if ref == "" {
			continue // a stylesheet, an inline script
		}
		name, err := resolve("", ref)
		if err != nil {
			return nil, fmt.Errorf("index.html: %w", err)
		}
		queue = append(queue, name)
	}
	if len(queue) == 0 {
		return nil, fmt.Errorf("index.html loads no module script: not a Vite build (run make web)")
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		code, err := readAsset(app, name)
		if err != nil {
			return nil, fmt.Errorf("a chunk the page loads is missing: %w", err)
		}
		for _, m := range staticImportRE.FindAllSubmatch(code, -1) {
			dep, err := resolve(name, string(m[1]))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			queue = append(queue, dep)
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for name := range seen {
			if !yield(name) {
				return
			}
		}
	}), nil
}

// resolve turns ref, as written in from (a path in the app; "" for
// index.html), into a path in the app. The app is built for base "/", so
// an absolute ref is relative to the app's root; refs to other origins
// are refused (the Content-Security-Policy would block them too).
func resolve(from, ref string) (string, error) {
	ref, _, _ = strings.Cut(ref, "?")
	switch {
	case strings.Contains(ref, "://") || strings.HasPrefix(ref, "//"):
		return "", fmt.Errorf("%q is not a file of the bundle", ref)
	case strings.HasPrefix(ref, "/"):
		return strings.TrimPrefix(path.Clean(ref), "/"), nil
	case strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../"):
		p := path.Join(path.Dir(from), ref)
		if p == ".." || strings.HasPrefix(p, "../") {
			return "", fmt.Errorf("%q leaves the app's directory", ref)
		}
		return p, nil
	default:
		// A bare specifier ("monaco-editor") would not load in a browser
		// without an import map: Vite resolves them all at build time.
		return "", fmt.Errorf("%q is a bare module specifier, not a file of the bundle", ref)
	}
}

// readAsset reads a file of the built app, which `make web` may have
// stored gzipped as name.gz (compress.mjs).
func readAsset(app fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(app, name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	gz, gzErr := fs.ReadFile(app, name+".gz")
	if gzErr != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("%s.gz: %w", name, err)
	}
	return io.ReadAll(zr)
}

// gzipSize is the size of b compressed with gzip at its default level, as
// a server or CDN compresses a response.
func gzipSize(b []byte) (int, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return buf.Len(), nil
}

// TestInitialChunks checks, on a small bundle laid out as Vite writes it,
// that the entry, a modulepreload link and the chunks imported statically
// (transitively, through a cycle) count, and that stylesheets, the
// dynamically imported editor and the workers do not.
func TestInitialChunks(t *testing.T) {
	app := fstest.MapFS{
		"index.html": {Data: []byte(`<!doctype html><html><head>
<script type="module" crossorigin src="/assets/index-A1.js"></script>
<link rel="modulepreload" crossorigin href="/assets/preload-B2.js">
<link rel="stylesheet" crossorigin href="/assets/index-C3.css">
<script>window.inline = 1</script>
</head><body><div id="app"></div></body></html>`)},
		"assets/index-A1.js": {Data: []byte(`const __vite__mapDeps=(i,m=__vite__mapDeps,d=(m.f||(m.f=["assets/editor-E5.js","assets/editor-F6.css"])))=>i.map(i=>d[i]);` +
			`import{a as r}from"./shared-D4.js";import"./side-G7.js";` +
			`const o=()=>__vitePreload(()=>import("./editor-E5.js"),__vite__mapDeps([0,1]));console.log(r,o,import.meta.url);`)},
		"assets/shared-D4.js":  {Data: []byte(`export*from"./vendor-H8.js";const a=1;export{a};`)},
		"assets/vendor-H8.js":  {Data: []byte(`import{a}from"./shared-D4.js";export const v=a;`)},
		"assets/side-G7.js":    {Data: []byte(`document.title="Sluice";`)},
		"assets/preload-B2.js": {Data: []byte(`export const p=2;`)},
		"assets/editor-E5.js": {Data: []byte(`import{v}from"./vendor-H8.js";` +
			`new Worker(new URL("/assets/editor.worker-W1.js",import.meta.url),{type:"module"});import("./lang-yaml-L1.js");`)},
		"assets/editor.worker-W1.js": {Data: []byte(`self.onmessage=()=>{};`)},
		"assets/index-C3.css":        {Data: []byte(`body{margin:0}`)},
	}
	// make web stores assets gzipped (compress.mjs): they count the same.
	vendor := app["assets/vendor-H8.js"].Data
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(vendor)
	_ = zw.Close()
	delete(app, "assets/vendor-H8.js")
	app["assets/vendor-H8.js.gz"] = &fstest.MapFile{Data: gz.Bytes()}
	got, err := initialChunks(app)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"assets/index-A1.js", "assets/preload-B2.js", "assets/shared-D4.js", "assets/side-G7.js", "assets/vendor-H8.js"}
	if !slices.Equal(got, want) {
		t.Errorf("initialChunks = %q, want %q", got, want)
	}

	// The placeholder a clone embeds before `make web` is no bundle, and
	// neither is a page without a module script: both say what to run.
	for name, app := range map[string]fstest.MapFS{
		"no index.html": {"placeholder.html": {Data: []byte(`<p>run make web</p>`)}},
		"no module":     {"index.html": {Data: []byte(`<script src="/old.js"></script>`)}},
	} {
		if _, err := initialChunks(app); err == nil || !strings.Contains(err.Error(), "make web") {
			t.Errorf("%s: err = %v, want one saying to run make web", name, err)
		}
	}
	// A static import of a file the build did not write is an error, not
	// a smaller figure.
	app["assets/side-G7.js"] = &fstest.MapFile{Data: []byte(`import"./gone-Z9.js";`)}
	if _, err := initialChunks(app); err == nil || !strings.Contains(err.Error(), "gone-Z9.js") {
		t.Errorf("a missing chunk: err = %v, want one naming it", err)
	}
}
