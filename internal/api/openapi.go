package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

func (s *Server) openAPIResource() resource {
	return resource{prefix: "/openapi.json", tag: "meta", routes: []route{
		{method: http.MethodGet, path: "", op: "getOpenAPI", summary: "This API's OpenAPI 3.1 document",
			access: public, resp: map[string]any{}, handle: func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				_, err := w.Write(s.openapi)
				return err
			}},
	}}
}

// OpenAPI returns the OpenAPI 3.1 document the server serves.
func (s *Server) OpenAPI() []byte { return s.openapi }

var pathParamRE = regexp.MustCompile(`\{([a-zA-Z]+)\}`)

// buildOpenAPI derives the document from the route table, so a route
// cannot be served without being documented; the router test checks the
// converse against chi's own route tree.
func (s *Server) buildOpenAPI() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	g.defs["Problem"] = g.schema(reflect.TypeOf(Problem{}))
	paths := map[string]map[string]any{}
	var tags []map[string]any
	for _, res := range s.resources {
		tags = append(tags, map[string]any{"name": res.tag})
		for _, rt := range res.routes {
			full := "/api/v1" + res.prefix + rt.path
			op := map[string]any{"operationId": rt.op, "summary": rt.summary, "tags": []string{res.tag}}
			var params []any
			for _, m := range pathParamRE.FindAllStringSubmatch(full, -1) {
				schema := map[string]any{"type": "string"}
				if strings.HasSuffix(m[1], "ID") {
					schema["format"] = "uuid"
				}
				params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": schema})
			}
			if rt.list {
				params = append(params,
					map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit, "default": defaultLimit}},
					map[string]any{"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": map[string]any{"type": "string"}})
			}
			if rt.method == http.MethodPost && rt.access != public {
				params = append(params, map[string]any{"name": IdempotencyHeader, "in": "header",
					"description": "Retries with the same key return the first response instead of applying the request again",
					"schema":      map[string]any{"type": "string", "maxLength": 255}})
			}
			if rt.method == http.MethodPatch || rt.method == http.MethodDelete {
				params = append(params, map[string]any{"name": "If-Match", "in": "header",
					"description": "ETag from a GET; the change is refused with 412 if the resource changed since", "schema": map[string]any{"type": "string"}})
			}
			if len(params) > 0 {
				op["parameters"] = params
			}
			if rt.body != nil {
				op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
					"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(rt.body))}}}
			}
			responses := map[string]any{}
			ok := map[string]any{"description": http.StatusText(rt.successStatus())}
			if rt.resp != nil {
				schema := g.ref(reflect.TypeOf(rt.resp))
				if rt.list {
					schema = map[string]any{"type": "object", "required": []string{"items"}, "properties": map[string]any{
						"items":       map[string]any{"type": "array", "items": schema},
						"next_cursor": map[string]any{"type": "string", "description": "absent on the last page"}}}
				}
				ok["content"] = map[string]any{"application/json": map[string]any{"schema": schema}}
			}
			responses[itoa(rt.successStatus())] = ok
			for _, code := range problemStatuses(rt) {
				responses[itoa(code)] = map[string]any{"description": http.StatusText(code), "content": map[string]any{
					"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
			}
			op["responses"] = responses
			if rt.access == public {
				op["security"] = []any{}
			}
			if paths[full] == nil {
				paths[full] = map[string]any{}
			}
			paths[full][strings.ToLower(rt.method)] = op
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i]["name"].(string) < tags[j]["name"].(string) })
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Sluice control plane API", "version": "v1",
			"description": "Errors are application/problem+json (RFC 9457) and name the offending field in `errors`. " +
				"Lists page with `limit` and `cursor`. Browser sessions send the CSRF token from login or GET /me as X-CSRF-Token on mutations."},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"tags":    dedupeTags(tags),
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"token":   map[string]any{"type": "http", "scheme": "bearer", "description": "API token (slc_...), scoped to one project"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": SessionCookie},
			},
		},
		"security": []any{map[string]any{"token": []string{}}, map[string]any{"session": []string{}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func dedupeTags(tags []map[string]any) []map[string]any {
	var out []map[string]any
	for i, t := range tags {
		if i == 0 || t["name"] != tags[i-1]["name"] {
			out = append(out, t)
		}
	}
	return out
}

func problemStatuses(rt route) []int {
	codes := []int{http.StatusBadRequest}
	if rt.access != public {
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden)
	}
	if rt.access == inProject || strings.Contains(rt.path, "{") {
		codes = append(codes, http.StatusNotFound)
	}
	if rt.body != nil {
		codes = append(codes, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity)
	}
	if rt.mutates() {
		codes = append(codes, http.StatusConflict)
	}
	if rt.method == http.MethodPatch || rt.method == http.MethodDelete {
		codes = append(codes, http.StatusPreconditionFailed)
	}
	if rt.op == "login" {
		codes = append(codes, http.StatusUnauthorized, http.StatusTooManyRequests)
	}
	return codes
}

func itoa(n int) string { return strconv.Itoa(n) }

// schemaGen turns Go request and response types into JSON Schemas
// (draft 2020-12, as OpenAPI 3.1 uses) by their json tags.
type schemaGen struct {
	defs map[string]any
}

var (
	timeType = reflect.TypeOf(time.Time{})
	uuidType = reflect.TypeOf(uuid.UUID{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

// ref returns a $ref to a named struct's schema, defining it once.
func (g *schemaGen) ref(t reflect.Type) any {
	if t.Kind() == reflect.Struct && t != timeType && t != uuidType {
		name := schemaName(t)
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.schema(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return g.schema(t)
}

func schemaName(t reflect.Type) string {
	n := strings.TrimSuffix(t.Name(), "Body")
	n = strings.TrimSuffix(n, "Request") + map[bool]string{true: "Request"}[strings.HasSuffix(t.Name(), "Request")]
	return strings.ToUpper(n[:1]) + n[1:]
}

func (g *schemaGen) schema(t reflect.Type) any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == uuidType:
		return map[string]any{"type": "string", "format": "uuid"}
	case t == rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		inner := g.schema(t.Elem())
		if m, ok := inner.(map[string]any); ok {
			if typ, ok := m["type"].(string); ok {
				cp := map[string]any{}
				for k, v := range m {
					cp[k] = v
				}
				cp["type"] = []string{typ, "null"}
				return cp
			}
		}
		return map[string]any{"anyOf": []any{g.ref(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		request := strings.HasSuffix(t.Name(), "Request")
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = g.ref(f.Type)
			// Responses always carry their non-omitempty fields; requests
			// mark what they require.
			if request {
				if f.Tag.Get("required") == "true" {
					required = append(required, name)
				}
			} else if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
				required = append(required, name)
			}
		}
		out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			out["required"] = required
		}
		return out
	}
	return map[string]any{}
}
