package api

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// nameRE is the shape of resource names (organisations, projects, fleets,
// pipelines): lower-case DNS-label-like, since they end up in topic names,
// URLs and Terraform resources.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func checkName(field, name string) []FieldError {
	if !nameRE.MatchString(name) {
		return []FieldError{{Field: field, Detail: "must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"}}
	}
	return nil
}

// checkText bounds free text (max in bytes) and keeps out what
// PostgreSQL's text type refuses: NUL and bytes that are not UTF-8. decode
// already refuses NUL in bodies; this covers text from anywhere else.
func checkText(field, s string, max int) []FieldError {
	switch {
	case len(s) > max:
		return []FieldError{{Field: field, Detail: fmt.Sprintf("too long: at most %d bytes", max)}}
	case strings.IndexByte(s, 0) >= 0:
		return []FieldError{{Field: field, Detail: "must not contain NUL (U+0000) characters"}}
	case !utf8.ValidString(s):
		return []FieldError{{Field: field, Detail: "must be UTF-8"}}
	}
	return nil
}
