package gitserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"

	"github.com/sluicehq/sluice/gitops/gitstore"
)

// drainLimit bounds how much of an oversized push is read (and dropped)
// so that git, still sending, reads our answer instead of a broken pipe.
const drainLimit = 1 << 30

// receivePack handles a push: parse it into memory, check it, store it,
// and report per ref, with the reasons and the hook's lines on side-band 2
// so git prints them as "remote: ...".
func (s *Server) receivePack(w http.ResponseWriter, r *http.Request) {
	a, ok := s.authorize(w, r, true)
	if !ok {
		return
	}
	ctx := r.Context()
	body, err := requestBody(r)
	if err != nil {
		http.Error(w, "bad gzip body", http.StatusBadRequest)
		return
	}
	defer body.Close()
	br := bufio.NewReader(body)
	if peek, err := br.Peek(4); err == nil && string(peek) == "0000" {
		// git probes with an empty request (a flush) before sending a
		// large pack in chunks, to learn whether it must authenticate.
		w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
		return
	}
	req := packp.NewReferenceUpdateRequest()
	if err := req.Decode(br); err != nil {
		http.Error(w, "bad receive-pack request: "+err.Error(), http.StatusBadRequest)
		return
	}

	noCache(w)
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	out := newReporter(w, req.Capabilities)

	p := &Push{Access: a, Progress: out.progress}
	for _, c := range req.Commands {
		p.Updates = append(p.Updates, RefUpdate{Name: c.Name, Old: c.Old, New: c.New})
	}
	repo := s.store.Repo(ctx, a.ProjectID)
	o := gitstore.NewOverlay(repo, s.store.MaxObjectSize())
	p.Objects = o

	if err := s.readPack(req.Packfile, o); err != nil {
		var limit *gitstore.LimitError
		if !errors.As(err, &limit) {
			s.cfg.log.WarnContext(ctx, "git receive-pack: bad pack", "project", a.ProjectID, "err", err)
		}
		out.line("error: " + err.Error())
		out.report(p, err.Error(), &refusal{reasons: allRefs(p, reasonUnpack)})
		return
	}
	f, err := s.apply(ctx, repo, o, p)
	if err != nil {
		s.cfg.log.ErrorContext(ctx, "git receive-pack", "project", a.ProjectID, "err", err)
		f = &refusal{reasons: allRefs(p, reasonInternal), lines: []string{"error: the push could not be stored; try again later"}}
	}
	if f != nil {
		for _, l := range f.lines {
			out.line(l)
		}
	}
	out.report(p, "ok", f)
}

// readPack reads the pushed packfile into o, within the push size limit,
// the per-object limit and, for all objects together uncompressed, the
// repository limit. The limits are checked from the object headers before
// anything is inflated, so a small pack cannot expand to gigabytes.
func (s *Server) readPack(rc io.ReadCloser, o *gitstore.Overlay) error {
	if rc == nil {
		return nil
	}
	defer rc.Close()
	pack, err := io.ReadAll(io.LimitReader(rc, s.cfg.maxPush+1))
	if err != nil {
		return fmt.Errorf("read pack: %w", err)
	}
	if int64(len(pack)) > s.cfg.maxPush {
		n, _ := io.Copy(io.Discard, io.LimitReader(rc, drainLimit))
		return &gitstore.LimitError{What: "the push", Limit: "push size limit", Size: int64(len(pack)) + n, Max: s.cfg.maxPush}
	}
	if len(pack) == 0 {
		return nil // deletions only
	}
	maxObject, maxTotal := s.store.MaxObjectSize(), s.store.MaxRepoSize()
	sc := packfile.NewScanner(bytes.NewReader(pack))
	_, count, err := sc.Header()
	if err != nil {
		return fmt.Errorf("bad pack: %w", err)
	}
	var total int64
	for range count {
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return fmt.Errorf("bad pack: %w", err)
		}
		size := oh.Length
		if oh.Type.IsDelta() {
			// A delta is no bigger than its result, give or take the
			// insert instructions' headers; its header holds the size of
			// the result.
			if oh.Length > maxObject+maxObject/64+64 {
				return &gitstore.LimitError{What: "an object of the push", Limit: "per-object limit", Size: oh.Length, Max: maxObject}
			}
			var d deltaSizes
			if _, _, err := sc.NextObject(&d); err != nil {
				return fmt.Errorf("bad pack: %w", err)
			}
			size = d.target()
		}
		if size > maxObject {
			return &gitstore.LimitError{What: "an object of the push", Limit: "per-object limit", Size: size, Max: maxObject}
		}
		if total += size; total > maxTotal {
			return &gitstore.LimitError{What: "the push uncompressed", Limit: "repository limit", Size: total, Max: maxTotal}
		}
	}
	parser, err := packfile.NewParserWithStorage(packfile.NewScanner(bytes.NewReader(pack)), o)
	if err != nil {
		return err
	}
	if _, err := parser.Parse(); err != nil {
		var limit *gitstore.LimitError
		if errors.As(err, &limit) {
			return limit
		}
		return fmt.Errorf("bad pack: %w", err)
	}
	return nil
}

// deltaSizes keeps the start of a delta, whose header is two varints: the
// sizes of the base and of the result.
type deltaSizes struct{ head []byte }

func (d *deltaSizes) Write(p []byte) (int, error) {
	if room := 20 - len(d.head); room > 0 {
		d.head = append(d.head, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (d *deltaSizes) target() int64 {
	b := d.head
	var sizes [2]int64
	for i := range sizes {
		var shift uint
		for len(b) > 0 {
			c := b[0]
			b = b[1:]
			sizes[i] |= int64(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 || shift > 56 {
				break
			}
		}
	}
	return sizes[1]
}

// reporter writes receive-pack's answer: side-band 2 lines (when the
// client reads side-band) and the report-status (when it asked for one).
type reporter struct {
	w          http.ResponseWriter
	mux        *sideband.Muxer
	wantReport bool
	progress   io.Writer
}

func newReporter(w http.ResponseWriter, caps *capability.List) *reporter {
	rp := &reporter{w: w, wantReport: caps.Supports(capability.ReportStatus), progress: io.Discard}
	switch {
	case caps.Supports(capability.Sideband64k):
		rp.mux = sideband.NewMuxer(sideband.Sideband64k, w)
	case caps.Supports(capability.Sideband):
		rp.mux = sideband.NewMuxer(sideband.Sideband, w)
	}
	if rp.mux != nil {
		rp.progress = &bandWriter{mux: rp.mux, rc: http.NewResponseController(w)}
	}
	return rp
}

func (rp *reporter) line(s string) {
	_, _ = io.WriteString(rp.progress, strings.TrimSuffix(s, "\n")+"\n")
}

// report sends the report-status: unpack is "ok" or why the pack was
// refused; f says why the refs were refused (nil when they all moved).
func (rp *reporter) report(p *Push, unpack string, f *refusal) {
	if rp.wantReport {
		rs := packp.NewReportStatus()
		rs.UnpackStatus = unpack
		for _, u := range p.Updates {
			st := "ok"
			if f != nil {
				st = f.reason(u.Name)
			}
			rs.CommandStatuses = append(rs.CommandStatuses, &packp.CommandStatus{ReferenceName: u.Name, Status: st})
		}
		var buf bytes.Buffer
		_ = rs.Encode(&buf)
		if rp.mux != nil {
			_, _ = rp.mux.Write(buf.Bytes())
		} else {
			_, _ = rp.w.Write(buf.Bytes())
		}
	}
	if rp.mux != nil {
		_ = pktline.NewEncoder(rp.w).Flush()
	}
}

// bandWriter sends what the hook writes on side-band 2 at once, so the
// pusher sees progress while a check runs.
type bandWriter struct {
	mu  sync.Mutex
	mux *sideband.Muxer
	rc  *http.ResponseController
}

func (b *bandWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.mux.WriteChannel(sideband.ProgressMessage, p)
	if err == nil {
		_ = b.rc.Flush()
	}
	return n, err
}
