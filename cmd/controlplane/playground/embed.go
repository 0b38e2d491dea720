// Package playground holds the files `controlplane dev` commits as the
// first revision of the playground project: an example pipeline and its
// test, so a new user's first `git clone` has something to change.
package playground

import "embed"

// Files is the repository's content.
//
//go:embed README.md pipelines
var Files embed.FS
