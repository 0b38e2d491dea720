package gitstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// maxCached bounds the bytes of objects one Repo keeps decoded, so a
// clone of a large repository does not hold all of it in memory twice.
const maxCached = 32 << 20

// ErrUnsupported is returned by the parts of storage.Storer a bare
// server-side repository has no use for (index, shallow, submodules,
// alternates, config writes).
var ErrUnsupported = errors.New("gitstore: not supported by a PostgreSQL repository")

// Repo is one project's repository, bound to the context of one request.
// It implements go-git's storage.Storer. Writes through the storer
// methods each commit on their own; a push writes through Update instead.
type Repo struct {
	ctx     context.Context
	store   *Store
	project uuid.UUID

	mu     sync.Mutex
	cache  map[plumbing.Hash]*plumbing.MemoryObject
	cached int64
}

var _ storage.Storer = (*Repo)(nil)

// Project is the project the repository belongs to.
func (r *Repo) Project() uuid.UUID { return r.project }

// NewEncodedObject returns an empty in-memory object to fill and pass to
// SetEncodedObject.
func (r *Repo) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

// SetEncodedObject stores one object in its own transaction, within the
// size limits.
func (r *Repo) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	if err := r.Update(r.ctx, []plumbing.EncodedObject{o}, nil, nil); err != nil {
		return plumbing.ZeroHash, err
	}
	return o.Hash(), nil
}

// EncodedObject reads an object; t may be plumbing.AnyObject.
func (r *Repo) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	r.mu.Lock()
	o, ok := r.cache[h]
	r.mu.Unlock()
	if !ok {
		var typ string
		var data []byte
		err := r.store.pool.QueryRow(r.ctx,
			`SELECT type, data FROM git_objects WHERE project_id = $1 AND hash = $2`,
			r.project, h[:]).Scan(&typ, &data)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, plumbing.ErrObjectNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("gitstore: read object %s: %w", h, err)
		}
		ot, err := plumbing.ParseObjectType(typ)
		if err != nil {
			return nil, fmt.Errorf("gitstore: object %s: %w", h, err)
		}
		o = &plumbing.MemoryObject{}
		o.SetType(ot)
		if _, err := o.Write(data); err != nil {
			return nil, err
		}
		o.Hash() // computed now, not lazily by concurrent readers of the cache
		r.mu.Lock()
		if r.cached+int64(len(data)) <= maxCached {
			r.cache[h] = o
			r.cached += int64(len(data))
		}
		r.mu.Unlock()
	}
	if t != plumbing.AnyObject && o.Type() != t {
		return nil, plumbing.ErrObjectNotFound
	}
	return o, nil
}

// IterEncodedObjects iterates over every object of type t (or of all
// types with plumbing.AnyObject), reading each lazily.
func (r *Repo) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	q := `SELECT hash FROM git_objects WHERE project_id = $1 AND ($2 = '' OR type = $2) ORDER BY hash`
	typ := ""
	if t != plumbing.AnyObject {
		typ = t.String()
	}
	rows, err := r.store.pool.Query(r.ctx, q, r.project, typ)
	if err != nil {
		return nil, fmt.Errorf("gitstore: list objects: %w", err)
	}
	hashes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (plumbing.Hash, error) {
		var b []byte
		var h plumbing.Hash
		err := row.Scan(&b)
		copy(h[:], b)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("gitstore: list objects: %w", err)
	}
	return storer.NewEncodedObjectLookupIter(r, t, hashes), nil
}

// HasEncodedObject returns nil when the object is stored and
// plumbing.ErrObjectNotFound when it is not.
func (r *Repo) HasEncodedObject(h plumbing.Hash) error {
	r.mu.Lock()
	_, ok := r.cache[h]
	r.mu.Unlock()
	if ok {
		return nil
	}
	var one int
	err := r.store.pool.QueryRow(r.ctx,
		`SELECT 1 FROM git_objects WHERE project_id = $1 AND hash = $2`, r.project, h[:]).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return plumbing.ErrObjectNotFound
	}
	return err
}

// EncodedObjectSize returns the uncompressed size of an object.
func (r *Repo) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	var n int64
	err := r.store.pool.QueryRow(r.ctx,
		`SELECT size FROM git_objects WHERE project_id = $1 AND hash = $2`, r.project, h[:]).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, plumbing.ErrObjectNotFound
	}
	return n, err
}

// AddAlternate is not supported: each repository is self-contained.
func (r *Repo) AddAlternate(string) error { return ErrUnsupported }

// Reference reads a ref. Without a stored HEAD, HEAD is a symbolic ref to
// the store's HeadBranch.
func (r *Repo) Reference(name plumbing.ReferenceName) (*plumbing.Reference, error) {
	var target string
	var symbolic bool
	err := r.store.pool.QueryRow(r.ctx,
		`SELECT target, symbolic FROM git_refs WHERE project_id = $1 AND name = $2`,
		r.project, name.String()).Scan(&target, &symbolic)
	if errors.Is(err, pgx.ErrNoRows) {
		if name == plumbing.HEAD {
			return r.defaultHead(), nil
		}
		return nil, plumbing.ErrReferenceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("gitstore: read ref %s: %w", name, err)
	}
	return toReference(name.String(), target, symbolic), nil
}

func (r *Repo) defaultHead() *plumbing.Reference {
	return plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(r.store.cfg.defaultBranch))
}

func toReference(name, target string, symbolic bool) *plumbing.Reference {
	if symbolic {
		return plumbing.NewSymbolicReference(plumbing.ReferenceName(name), plumbing.ReferenceName(target))
	}
	return plumbing.NewHashReference(plumbing.ReferenceName(name), plumbing.NewHash(target))
}

func refTarget(ref *plumbing.Reference) (string, bool, error) {
	switch ref.Type() {
	case plumbing.HashReference:
		return ref.Hash().String(), false, nil
	case plumbing.SymbolicReference:
		return ref.Target().String(), true, nil
	}
	return "", false, fmt.Errorf("gitstore: ref %s has no target", ref.Name())
}

// SetReference writes a ref unconditionally.
func (r *Repo) SetReference(ref *plumbing.Reference) error {
	target, symbolic, err := refTarget(ref)
	if err != nil {
		return err
	}
	_, err = r.store.pool.Exec(r.ctx, `INSERT INTO git_refs (project_id, name, target, symbolic) VALUES ($1, $2, $3, $4)
		ON CONFLICT (project_id, name) DO UPDATE SET target = excluded.target, symbolic = excluded.symbolic, updated_at = now()`,
		r.project, ref.Name().String(), target, symbolic)
	return err
}

// CheckAndSetReference writes ref if the stored value of old.Name() is
// still old (a nil old writes unconditionally). A moved ref gives a
// *StaleRefError.
func (r *Repo) CheckAndSetReference(ref, old *plumbing.Reference) error {
	if old == nil {
		return r.SetReference(ref)
	}
	target, symbolic, err := refTarget(ref)
	if err != nil {
		return err
	}
	oldTarget, _, err := refTarget(old)
	if err != nil {
		return err
	}
	tag, err := r.store.pool.Exec(r.ctx, `UPDATE git_refs SET target = $3, symbolic = $4, updated_at = now()
		WHERE project_id = $1 AND name = $2 AND target = $5`,
		r.project, ref.Name().String(), target, symbolic, oldTarget)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return &StaleRefError{Name: ref.Name()}
	}
	return nil
}

// IterReferences iterates over every ref, HEAD included.
func (r *Repo) IterReferences() (storer.ReferenceIter, error) {
	rows, err := r.store.pool.Query(r.ctx,
		`SELECT name, target, symbolic FROM git_refs WHERE project_id = $1 ORDER BY name`, r.project)
	if err != nil {
		return nil, fmt.Errorf("gitstore: list refs: %w", err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*plumbing.Reference, error) {
		var name, target string
		var symbolic bool
		err := row.Scan(&name, &target, &symbolic)
		return toReference(name, target, symbolic), err
	})
	if err != nil {
		return nil, fmt.Errorf("gitstore: list refs: %w", err)
	}
	hasHead := false
	for _, ref := range refs {
		hasHead = hasHead || ref.Name() == plumbing.HEAD
	}
	if !hasHead {
		refs = append([]*plumbing.Reference{r.defaultHead()}, refs...)
	}
	return storer.NewReferenceSliceIter(refs), nil
}

// RemoveReference deletes a ref; deleting a missing ref is not an error.
func (r *Repo) RemoveReference(name plumbing.ReferenceName) error {
	_, err := r.store.pool.Exec(r.ctx, `DELETE FROM git_refs WHERE project_id = $1 AND name = $2`, r.project, name.String())
	return err
}

// CountLooseRefs counts the refs (all are "loose": nothing is packed).
func (r *Repo) CountLooseRefs() (int, error) {
	var n int
	err := r.store.pool.QueryRow(r.ctx, `SELECT count(*) FROM git_refs WHERE project_id = $1`, r.project).Scan(&n)
	return n, err
}

// PackRefs does nothing: rows need no packing.
func (r *Repo) PackRefs() error { return nil }

// SetShallow is not supported: the server keeps full histories.
func (r *Repo) SetShallow([]plumbing.Hash) error { return ErrUnsupported }

// Shallow returns no shallow commits.
func (r *Repo) Shallow() ([]plumbing.Hash, error) { return nil, nil }

// SetIndex is not supported: the repository is bare.
func (r *Repo) SetIndex(*index.Index) error { return ErrUnsupported }

// Index returns an empty index: the repository is bare.
func (r *Repo) Index() (*index.Index, error) { return &index.Index{Version: 2}, nil }

// Config returns the configuration of a bare repository.
func (r *Repo) Config() (*gitconfig.Config, error) {
	c := gitconfig.NewConfig()
	c.Core.IsBare = true
	c.Init.DefaultBranch = r.store.cfg.defaultBranch
	return c, nil
}

// SetConfig is not supported: the configuration is fixed.
func (r *Repo) SetConfig(*gitconfig.Config) error { return ErrUnsupported }

// Module is not supported: submodules are not served.
func (r *Repo) Module(string) (storage.Storer, error) { return nil, ErrUnsupported }

// RefUpdate is one compare-and-swap of a ref: Old is the value expected
// now (plumbing.ZeroHash for a ref to create), New the value to set
// (plumbing.ZeroHash to delete the ref).
type RefUpdate struct {
	Name     plumbing.ReferenceName
	Old, New plumbing.Hash
}

// Size returns the repository's stored size in bytes.
func (r *Repo) Size(ctx context.Context) (int64, error) {
	var n int64
	err := r.store.pool.QueryRow(ctx, `SELECT coalesce((SELECT size_bytes FROM git_repos WHERE project_id = $1), 0)`, r.project).Scan(&n)
	return n, err
}

// insertBatch bounds the object bytes sent in one INSERT statement.
const insertBatch = 4 << 20

// Update stores objects and applies refs in one transaction, then calls
// accepted (if not nil) inside it, so rows the caller writes commit or
// roll back with the push. Objects already stored are skipped. A ref that
// no longer holds its Old value gives a *StaleRefError; an object or the
// repository over its limit gives a *LimitError. Either way nothing is
// stored. Concurrent updates of one repository run one after the other.
func (r *Repo) Update(ctx context.Context, objects []plumbing.EncodedObject, refs []RefUpdate, accepted func(context.Context, pgx.Tx) error) error {
	for _, o := range objects {
		if o.Size() > r.store.cfg.maxObject {
			return &LimitError{What: "object " + o.Hash().String()[:7], Limit: "per-object limit", Size: o.Size(), Max: r.store.cfg.maxObject}
		}
	}
	return pgx.BeginFunc(ctx, r.store.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO git_repos (project_id) VALUES ($1) ON CONFLICT DO NOTHING`, r.project); err != nil {
			return fmt.Errorf("gitstore: %w", err)
		}
		var size int64
		if err := tx.QueryRow(ctx, `SELECT size_bytes FROM git_repos WHERE project_id = $1 FOR UPDATE`, r.project).Scan(&size); err != nil {
			return fmt.Errorf("gitstore: lock repository: %w", err)
		}
		added, n, err := insertObjects(ctx, tx, r.project, objects)
		if err != nil {
			return err
		}
		if size+added > r.store.cfg.maxRepo {
			return &LimitError{What: "the repository", Limit: "repository limit", Size: size + added, Max: r.store.cfg.maxRepo}
		}
		if n > 0 {
			if _, err := tx.Exec(ctx, `UPDATE git_repos SET size_bytes = size_bytes + $2, objects = objects + $3, updated_at = now()
				WHERE project_id = $1`, r.project, added, n); err != nil {
				return fmt.Errorf("gitstore: %w", err)
			}
		}
		for _, u := range refs {
			if err := casRef(ctx, tx, r.project, u); err != nil {
				return err
			}
		}
		if accepted != nil {
			return accepted(ctx, tx)
		}
		return nil
	})
}

func insertObjects(ctx context.Context, tx pgx.Tx, project uuid.UUID, objects []plumbing.EncodedObject) (added, n int64, err error) {
	var hashes, datas [][]byte
	var types []string
	var sizes []int64
	var batch int64
	flush := func() error {
		if len(hashes) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `INSERT INTO git_objects (project_id, hash, type, size, data)
			SELECT $1, h, t, s, d FROM unnest($2::bytea[], $3::text[], $4::bigint[], $5::bytea[]) AS u (h, t, s, d)
			ON CONFLICT DO NOTHING RETURNING size`, project, hashes, types, sizes, datas)
		if err != nil {
			return fmt.Errorf("gitstore: store objects: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("gitstore: store objects: %w", err)
		}
		for _, s := range got {
			added += s
		}
		n += int64(len(got))
		hashes, types, sizes, datas, batch = hashes[:0], types[:0], sizes[:0], datas[:0], 0
		return nil
	}
	for _, o := range objects {
		data, err := objectBytes(o)
		if err != nil {
			return 0, 0, err
		}
		h := o.Hash()
		hashes = append(hashes, h[:])
		types = append(types, o.Type().String())
		sizes = append(sizes, int64(len(data)))
		datas = append(datas, data)
		batch += int64(len(data))
		if batch >= insertBatch {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	return added, n, flush()
}

func objectBytes(o plumbing.EncodedObject) ([]byte, error) {
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

func casRef(ctx context.Context, tx pgx.Tx, project uuid.UUID, u RefUpdate) error {
	if !strings.HasPrefix(u.Name.String(), "refs/") {
		return fmt.Errorf("gitstore: refusing to update %q outside refs/", u.Name)
	}
	var sql string
	args := []any{project, u.Name.String()}
	switch {
	case u.Old.IsZero() && u.New.IsZero():
		return fmt.Errorf("gitstore: update of %s has neither old nor new value", u.Name)
	case u.Old.IsZero():
		sql = `INSERT INTO git_refs (project_id, name, target) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
		args = append(args, u.New.String())
	case u.New.IsZero():
		sql = `DELETE FROM git_refs WHERE project_id = $1 AND name = $2 AND target = $3 AND NOT symbolic`
		args = append(args, u.Old.String())
	default:
		sql = `UPDATE git_refs SET target = $3, updated_at = now() WHERE project_id = $1 AND name = $2 AND target = $4 AND NOT symbolic`
		args = append(args, u.New.String(), u.Old.String())
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("gitstore: update %s: %w", u.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return &StaleRefError{Name: u.Name}
	}
	return nil
}
