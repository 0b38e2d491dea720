package api

import (
	"regexp"
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

func checkText(field, s string, max int) []FieldError {
	if len(s) > max {
		return []FieldError{{Field: field, Detail: "too long"}}
	}
	return nil
}
