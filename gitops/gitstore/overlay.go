package gitstore

import (
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Overlay is an object store that keeps new objects in memory over a base
// store it only reads: a push's objects are parsed, checked and compiled
// through an Overlay before anything is stored, then Added is what
// Repo.Update writes. It is safe for concurrent use.
type Overlay struct {
	base      storer.EncodedObjectStorer
	maxObject int64

	mu    sync.Mutex
	objs  map[plumbing.Hash]plumbing.EncodedObject
	order []plumbing.Hash
	bytes int64
}

var _ storer.EncodedObjectStorer = (*Overlay)(nil)

// NewOverlay returns an empty overlay over base. Objects larger than
// maxObject bytes are refused with a *LimitError (0 means no limit).
func NewOverlay(base storer.EncodedObjectStorer, maxObject int64) *Overlay {
	return &Overlay{base: base, maxObject: maxObject, objs: map[plumbing.Hash]plumbing.EncodedObject{}}
}

// Added returns the objects set in the overlay, in the order they were set.
func (o *Overlay) Added() []plumbing.EncodedObject {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]plumbing.EncodedObject, len(o.order))
	for i, h := range o.order {
		out[i] = o.objs[h]
	}
	return out
}

// IsAdded reports whether h was set in the overlay (rather than read from
// the base).
func (o *Overlay) IsAdded(h plumbing.Hash) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.objs[h]
	return ok
}

// AddedBytes is the total size of the objects set in the overlay.
func (o *Overlay) AddedBytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}

// NewEncodedObject returns an empty in-memory object.
func (o *Overlay) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

// SetEncodedObject keeps obj in memory.
func (o *Overlay) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	if o.maxObject > 0 && obj.Size() > o.maxObject {
		return plumbing.ZeroHash, &LimitError{What: "object " + obj.Hash().String()[:7], Limit: "per-object limit", Size: obj.Size(), Max: o.maxObject}
	}
	h := obj.Hash()
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.objs[h]; !ok {
		o.objs[h] = obj
		o.order = append(o.order, h)
		o.bytes += obj.Size()
	}
	return h, nil
}

// EncodedObject reads an object from the overlay, else from the base.
func (o *Overlay) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	o.mu.Lock()
	obj, ok := o.objs[h]
	o.mu.Unlock()
	if !ok {
		return o.base.EncodedObject(t, h)
	}
	if t != plumbing.AnyObject && obj.Type() != t {
		return nil, plumbing.ErrObjectNotFound
	}
	return obj, nil
}

// IterEncodedObjects iterates over the overlay's objects, then the base's.
func (o *Overlay) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	var mine []plumbing.EncodedObject
	for _, obj := range o.Added() {
		if t == plumbing.AnyObject || obj.Type() == t {
			mine = append(mine, obj)
		}
	}
	base, err := o.base.IterEncodedObjects(t)
	if err != nil {
		return nil, err
	}
	return storer.NewMultiEncodedObjectIter([]storer.EncodedObjectIter{storer.NewEncodedObjectSliceIter(mine), base}), nil
}

// HasEncodedObject looks in the overlay, then the base.
func (o *Overlay) HasEncodedObject(h plumbing.Hash) error {
	if o.IsAdded(h) {
		return nil
	}
	return o.base.HasEncodedObject(h)
}

// EncodedObjectSize looks in the overlay, then the base.
func (o *Overlay) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	o.mu.Lock()
	obj, ok := o.objs[h]
	o.mu.Unlock()
	if ok {
		return obj.Size(), nil
	}
	return o.base.EncodedObjectSize(h)
}

// AddAlternate is not supported.
func (o *Overlay) AddAlternate(string) error { return ErrUnsupported }
