package web

import (
	"io/fs"
	"testing"
)

// BenchmarkInitialBundle reports the IDE's initial JS as the control plane
// embeds it (web/dist/app, built by `make web`): the files initialChunks
// finds, each gzipped at the default level, summed ("gzip-bytes"), with
// their uncompressed size ("js-bytes") and count ("chunks"). ns/op is the
// time to find and compress them, which says nothing about the browser.
func BenchmarkInitialBundle(b *testing.B) {
	if !Built() {
		b.Fatal("web/dist/app is not built, the control plane embeds only the placeholder: run make web")
	}
	app, err := fs.Sub(dist, "dist/app")
	if err != nil {
		b.Fatal(err)
	}
	var chunks, raw, zipped int
	for b.Loop() {
		names, err := initialChunks(app)
		if err != nil {
			b.Fatal(err)
		}
		chunks, raw, zipped = len(names), 0, 0
		for _, name := range names {
			code, err := readAsset(app, name)
			if err != nil {
				b.Fatal(err)
			}
			n, err := gzipSize(code)
			if err != nil {
				b.Fatal(err)
			}
			raw += len(code)
			zipped += n
		}
	}
	b.ReportMetric(float64(zipped), "gzip-bytes")
	b.ReportMetric(float64(raw), "js-bytes")
	b.ReportMetric(float64(chunks), "chunks")
}
