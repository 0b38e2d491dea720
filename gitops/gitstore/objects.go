package gitstore

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Commit is what the API shows of a commit.
type Commit struct {
	Hash      plumbing.Hash
	Tree      plumbing.Hash
	Parents   []plumbing.Hash
	Author    object.Signature
	Committer object.Signature
	Message   string
}

func toCommit(c *object.Commit) Commit {
	return Commit{
		Hash:      c.Hash,
		Tree:      c.TreeHash,
		Parents:   append([]plumbing.Hash(nil), c.ParentHashes...),
		Author:    c.Author,
		Committer: c.Committer,
		Message:   c.Message,
	}
}

// ReadCommit reads the commit h from objects (a Repo or an Overlay).
func ReadCommit(objects storer.EncodedObjectStorer, h plumbing.Hash) (Commit, error) {
	c, err := object.GetCommit(objects, h)
	if err != nil {
		return Commit{}, fmt.Errorf("gitstore: commit %s: %w", h, err)
	}
	return toCommit(c), nil
}

// Log returns up to n commits reachable from head, newest first by commit
// time, as git log orders them.
func Log(objects storer.EncodedObjectStorer, head plumbing.Hash, n int) ([]Commit, error) {
	c, err := object.GetCommit(objects, head)
	if err != nil {
		return nil, fmt.Errorf("gitstore: commit %s: %w", head, err)
	}
	var out []Commit
	it := object.NewCommitIterCTime(c, nil, nil)
	defer it.Close()
	for len(out) < n {
		c, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("gitstore: log of %s: %w", head, err)
		}
		out = append(out, toCommit(c))
	}
	return out, nil
}

// TreeFiles returns the content of every regular file in commit's tree, by
// slash-separated path ("pipelines/geofence.yaml"). Symbolic links and
// submodules are left out: nothing outside the repository can be read
// through them. More than maxFiles files, or more than maxBytes in total,
// gives a *LimitError naming the limit, before the contents are read.
func TreeFiles(objects storer.EncodedObjectStorer, commit plumbing.Hash, maxFiles int, maxBytes int64) (map[string][]byte, error) {
	c, err := object.GetCommit(objects, commit)
	if err != nil {
		return nil, fmt.Errorf("gitstore: commit %s: %w", commit, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("gitstore: tree of %s: %w", commit, err)
	}
	type entry struct {
		path string
		hash plumbing.Hash
	}
	var entries []entry
	var total int64
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gitstore: tree of %s: %w", commit, err)
		}
		if e.Mode != filemode.Regular && e.Mode != filemode.Executable && e.Mode != filemode.Deprecated {
			continue
		}
		if len(entries) == maxFiles {
			return nil, &LimitError{What: fmt.Sprintf("commit %s with more than %d files", commit.String()[:7], maxFiles),
				Limit: "file count limit", Size: int64(maxFiles + 1), Max: int64(maxFiles)}
		}
		size, err := objects.EncodedObjectSize(e.Hash)
		if err != nil {
			return nil, fmt.Errorf("gitstore: %s: %w", name, err)
		}
		total += size
		if total > maxBytes {
			return nil, &LimitError{What: fmt.Sprintf("the content of commit %s", commit.String()[:7]),
				Limit: "size limit for the files of a commit", Size: total, Max: maxBytes}
		}
		entries = append(entries, entry{name, e.Hash})
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		obj, err := objects.EncodedObject(plumbing.BlobObject, e.hash)
		if err != nil {
			return nil, fmt.Errorf("gitstore: %s: %w", e.path, err)
		}
		data, err := objectBytes(obj)
		if err != nil {
			return nil, fmt.Errorf("gitstore: %s: %w", e.path, err)
		}
		files[e.path] = data
	}
	return files, nil
}

// PathError is returned by WriteTree for a path it cannot store.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string { return fmt.Sprintf("gitstore: path %q: %s", e.Path, e.Reason) }

// CheckPath reports whether p is a path a repository file may have: slash
// separated, relative, clean, with no ".git" component.
func CheckPath(p string) error {
	switch {
	case p == "":
		return &PathError{p, "empty"}
	case strings.HasPrefix(p, "/"):
		return &PathError{p, "must be relative"}
	case strings.Contains(p, "\\") || strings.ContainsRune(p, 0):
		return &PathError{p, "must use / as separator and hold no NUL"}
	case path.Clean(p) != p:
		return &PathError{p, "must be clean (no //, ./, ../ or trailing /)"}
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || strings.EqualFold(part, ".git") {
			return &PathError{p, "must not contain . , .. or .git"}
		}
	}
	return nil
}

type dir struct {
	files map[string][]byte
	dirs  map[string]*dir
}

// WriteTree writes files (content by slash path, as TreeFiles returns
// them) as blobs and trees into objects and returns the root tree. The
// tree is exactly files: an empty map gives the empty tree.
func WriteTree(objects storer.EncodedObjectStorer, files map[string][]byte) (plumbing.Hash, error) {
	root := &dir{files: map[string][]byte{}, dirs: map[string]*dir{}}
	for p, data := range files {
		if err := CheckPath(p); err != nil {
			return plumbing.ZeroHash, err
		}
		parts := strings.Split(p, "/")
		d := root
		for _, part := range parts[:len(parts)-1] {
			if _, ok := d.files[part]; ok {
				return plumbing.ZeroHash, &PathError{p, "a parent directory is also a file"}
			}
			sub, ok := d.dirs[part]
			if !ok {
				sub = &dir{files: map[string][]byte{}, dirs: map[string]*dir{}}
				d.dirs[part] = sub
			}
			d = sub
		}
		name := parts[len(parts)-1]
		if _, ok := d.dirs[name]; ok {
			return plumbing.ZeroHash, &PathError{p, "is also a directory"}
		}
		d.files[name] = data
	}
	return writeDir(objects, root)
}

func writeDir(objects storer.EncodedObjectStorer, d *dir) (plumbing.Hash, error) {
	var t object.Tree
	for name, data := range d.files {
		h, err := writeObject(objects, plumbing.BlobObject, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		t.Entries = append(t.Entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
	}
	for name, sub := range d.dirs {
		h, err := writeDir(objects, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		t.Entries = append(t.Entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}
	// Git orders entries by name, a directory's name as if it ended in "/";
	// git fsck rejects trees in any other order.
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(t.Entries, func(i, j int) bool { return key(t.Entries[i]) < key(t.Entries[j]) })
	obj := objects.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return objects.SetEncodedObject(obj)
}

func writeObject(objects storer.EncodedObjectStorer, t plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	obj := objects.NewEncodedObject()
	obj.SetType(t)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return objects.SetEncodedObject(obj)
}

// WriteCommit writes a commit object into objects and returns its hash.
// The committer is the author when c.Committer is zero.
func WriteCommit(objects storer.EncodedObjectStorer, c Commit) (plumbing.Hash, error) {
	oc := object.Commit{
		Author:       c.Author,
		Committer:    c.Committer,
		Message:      c.Message,
		TreeHash:     c.Tree,
		ParentHashes: c.Parents,
	}
	if oc.Committer.Name == "" && oc.Committer.Email == "" {
		oc.Committer = c.Author
	}
	obj := objects.NewEncodedObject()
	if err := oc.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return objects.SetEncodedObject(obj)
}
