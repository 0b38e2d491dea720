package gitserver

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/revlist"

	"github.com/sluicehq/sluice/gitops/gitstore"
)

const (
	uploadPack  = "git-upload-pack"
	receivePack = "git-receive-pack"
	// packWindow is how many objects the pack encoder tries as delta bases.
	packWindow = 10
)

func (s *Server) infoRefs(w http.ResponseWriter, r *http.Request) {
	service := r.URL.Query().Get("service")
	if service != uploadPack && service != receivePack {
		http.Error(w, "only the smart HTTP protocol is served: git 1.6.6 or later", http.StatusForbidden)
		return
	}
	a, ok := s.authorize(w, r, service == receivePack)
	if !ok {
		return
	}
	repo := s.store.Repo(r.Context(), a.ProjectID)
	ar, err := s.advertise(repo, a, service)
	if err != nil {
		s.cfg.log.ErrorContext(r.Context(), "git: list refs", "project", a.ProjectID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ar.Prefix = [][]byte{[]byte("# service=" + service), pktline.Flush}
	var buf bytes.Buffer
	if err := ar.Encode(&buf); err != nil {
		s.cfg.log.ErrorContext(r.Context(), "git: encode refs", "project", a.ProjectID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	noCache(w)
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	_, _ = w.Write(buf.Bytes())
}

// advertise lists the refs and capabilities of the repository. HEAD is
// always the deploy branch, so a clone checks out what is deployed.
func (s *Server) advertise(repo *gitstore.Repo, a Access, service string) (*packp.AdvRefs, error) {
	ar := packp.NewAdvRefs()
	caps := ar.Capabilities
	var err error
	set := func(c capability.Capability, v ...string) {
		if err == nil {
			err = caps.Set(c, v...)
		}
	}
	if service == uploadPack {
		// multi_ack_detailed is what git requires of a stateless (HTTP)
		// server for fetches that negotiate common commits.
		set(capability.MultiACKDetailed)
		set(capability.Sideband64k)
		set(capability.Sideband)
		set(capability.OFSDelta)
		set(capability.NoProgress)
		set(capability.SymRef, "HEAD:"+a.deployRef().String())
	} else {
		set(capability.ReportStatus)
		set(capability.DeleteRefs)
		set(capability.Sideband64k)
		set(capability.Quiet)
		set(capability.Atomic)
		set(capability.OFSDelta)
	}
	set(capability.Agent, s.cfg.agent)
	if err != nil {
		return nil, err
	}
	iter, err := repo.IterReferences()
	if err != nil {
		return nil, err
	}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference || !strings.HasPrefix(ref.Name().String(), "refs/") {
			return nil
		}
		ar.References[ref.Name().String()] = ref.Hash()
		if ref.Name().IsTag() && service == uploadPack {
			// Peeled tags let git follow tags without another round trip.
			if tag, err := object.GetTag(repo, ref.Hash()); err == nil {
				ar.Peeled[ref.Name().String()] = tag.Target
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if h, ok := ar.References[a.deployRef().String()]; ok {
		ar.Head = &h
	}
	return ar, nil
}

// uploadPack answers one round of a fetch's negotiation, stateless as
// smart HTTP is: the client resends its wants and the haves it knows we
// share each round, then "done", which is answered with the pack.
func (s *Server) uploadPack(w http.ResponseWriter, r *http.Request) {
	a, ok := s.authorize(w, r, false)
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
	repo := s.store.Repo(ctx, a.ProjectID)

	noCache(w)
	w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
	out := pktline.NewEncoder(w)
	fail := func(msg string) {
		_ = out.EncodeString("ERR " + msg + "\n")
	}

	sc := pktline.NewScanner(body)
	var wants []plumbing.Hash
	caps := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimSuffix(string(sc.Bytes()), "\n")
		if line == "" {
			break // flush: end of wants
		}
		switch {
		case strings.HasPrefix(line, "want "):
			fields := strings.Fields(line[len("want "):])
			if len(fields) == 0 || !plumbing.IsHash(fields[0]) {
				fail("upload-pack: protocol error, bad line " + line)
				return
			}
			if len(wants) == 0 {
				for _, c := range fields[1:] {
					caps[strings.SplitN(c, "=", 2)[0]] = true
				}
			}
			wants = append(wants, plumbing.NewHash(fields[0]))
		case strings.HasPrefix(line, "shallow "), strings.HasPrefix(line, "deepen"):
			fail("shallow fetches are not supported by this server")
			return
		default:
			fail("upload-pack: protocol error, unexpected " + line)
			return
		}
	}
	if err := sc.Err(); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(wants) == 0 {
		return // the client has everything it wants
	}
	for _, h := range wants {
		// Every object of the repository may be read by whoever can read
		// it, so a want need not be a ref tip, only exist.
		if err := repo.HasEncodedObject(h); err != nil {
			fail("upload-pack: not our ref " + h.String())
			return
		}
	}

	var common []plumbing.Hash
	done := false
	for !done && sc.Scan() {
		line := strings.TrimSuffix(string(sc.Bytes()), "\n")
		switch {
		case line == "":
			// End of a negotiation round: the client sends the next
			// round, with the common haves, as a new request.
			_ = out.EncodeString("NAK\n")
			return
		case line == "done":
			done = true
		case strings.HasPrefix(line, "have "):
			hex := strings.TrimSpace(line[len("have "):])
			if !plumbing.IsHash(hex) {
				fail("upload-pack: protocol error, bad line " + line)
				return
			}
			h := plumbing.NewHash(hex)
			if repo.HasEncodedObject(h) == nil {
				common = append(common, h)
				_ = out.EncodeString("ACK " + hex + " common\n")
			}
		default:
			fail("upload-pack: protocol error, unexpected " + line)
			return
		}
	}
	if err := sc.Err(); err != nil {
		s.cfg.log.WarnContext(ctx, "git upload-pack: read request", "project", a.ProjectID, "err", err)
		return
	}
	if len(common) > 0 {
		_ = out.EncodeString("ACK " + common[len(common)-1].String() + "\n")
	} else {
		_ = out.EncodeString("NAK\n")
	}

	objs, err := revlist.Objects(repo, wants, common)
	if err != nil {
		s.cfg.log.ErrorContext(ctx, "git upload-pack: list objects", "project", a.ProjectID, "err", err)
		s.sendError(w, caps, "upload-pack: cannot list objects")
		return
	}
	var pack io.Writer = w
	var mux *sideband.Muxer
	switch {
	case caps[string(capability.Sideband64k)]:
		mux = sideband.NewMuxer(sideband.Sideband64k, w)
	case caps[string(capability.Sideband)]:
		mux = sideband.NewMuxer(sideband.Sideband, w)
	}
	if mux != nil {
		pack = mux
	}
	if _, err := packfile.NewEncoder(pack, repo, false).Encode(objs, packWindow); err != nil {
		s.cfg.log.ErrorContext(ctx, "git upload-pack: encode pack", "project", a.ProjectID, "err", err)
		if mux != nil {
			_, _ = mux.WriteChannel(sideband.ErrorMessage, []byte("upload-pack: cannot send the pack\n"))
		}
		return
	}
	if mux != nil {
		_ = out.Flush()
	}
}

// sendError reports an error after negotiation, on side-band 3 when the
// client reads one, else as an ERR line.
func (s *Server) sendError(w io.Writer, caps map[string]bool, msg string) {
	if caps[string(capability.Sideband64k)] || caps[string(capability.Sideband)] {
		_, _ = sideband.NewMuxer(sideband.Sideband, w).WriteChannel(sideband.ErrorMessage, []byte(msg+"\n"))
		return
	}
	_ = pktline.NewEncoder(w).EncodeString("ERR " + msg + "\n")
}
