package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// validator is implemented by request bodies that check their fields.
type validator interface {
	validate() []FieldError
}

// decode reads a JSON request body into dst strictly: one object, no
// unknown fields, the right types, within the size limit. Every failure is
// a 4xx problem naming the field when there is one.
func decode(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return problem(http.StatusUnsupportedMediaType, "unsupported-media-type",
				"send the body as application/json", FieldError{Field: "Content-Type", Detail: "must be application/json"})
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if p := bodyTooLarge(err); p != nil {
			return p
		}
		return badRequest("the body must be a single JSON object with nothing after it")
	}
	// JSON may spell NUL as \u0000, but PostgreSQL's text and jsonb refuse
	// it: without this check such a field is a 500 at the first INSERT.
	if field, found := nulField(reflect.ValueOf(dst), ""); found {
		return invalidField(field, "must not contain NUL (U+0000) characters")
	}
	if v, ok := dst.(validator); ok {
		if errs := v.validate(); len(errs) > 0 {
			return invalid(errs...)
		}
	}
	return nil
}

func bodyTooLarge(err error) *Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problem(http.StatusRequestEntityTooLarge, "too-large",
			fmt.Sprintf("the body is larger than the %d-byte limit", mbe.Limit))
	}
	return nil
}

func decodeError(err error) error {
	if p := bodyTooLarge(err); p != nil {
		return p
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the JSON body ends too early")
	case errors.As(err, &syn):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error()))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return badRequest("the body must be a JSON object, not " + typ.Value)
		}
		return invalidField(field, "must be %s, not %s", jsonTypeName(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return invalidField(name, "unknown field")
	}
	// Errors from a field's own UnmarshalJSON (time, uuid) carry no field
	// name; say what failed.
	return badRequest("invalid JSON body: " + err.Error())
}

// nulField finds a string holding NUL anywhere in v (struct fields by
// their JSON names, map keys and values, slice elements) and returns its
// path, such as "settings.region" or "items[2]".
func nulField(v reflect.Value, path string) (string, bool) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch v.Kind() {
	case reflect.String:
		return path, strings.IndexByte(v.String(), 0) >= 0
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nulField(v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if p, found := nulField(v.Field(i), join(name)); found {
				return p, true
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			if strings.IndexByte(k, 0) >= 0 {
				return join(strings.ReplaceAll(k, "\x00", `\u0000`)), true
			}
			if p, found := nulField(iter.Value(), join(k)); found {
				return p, true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", false // []byte and json.RawMessage are not text
		}
		for i := range v.Len() {
			if p, found := nulField(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); found {
				return p, true
			}
		}
	}
	return "", false
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string", goType == "*string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "struct"):
		return "an object"
	case strings.HasPrefix(goType, "*"):
		return jsonTypeName(goType[1:])
	}
	return "a " + goType
}

// parseID parses a UUID from a path parameter or body field.
func parseID(field, raw string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, badRequest(field+" is not a UUID", FieldError{Field: field, Detail: fmt.Sprintf("%q is not a UUID", raw)})
	}
	return id, nil
}

// pathID parses the UUID path parameter name.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	return parseID(name, chi.URLParam(r, name))
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeVersioned writes v with an ETag for version, which If-Match on a
// later update must repeat.
func writeVersioned(w http.ResponseWriter, status int, v any, version int) error {
	w.Header().Set("ETag", etag(version))
	return writeJSON(w, status, v)
}

func etag(version int) string { return `"` + strconv.Itoa(version) + `"` }

// ifMatch returns the version an update must find: nil when the request
// has no If-Match (or `*`), so the update is unconditional. If-Match
// compares strongly (RFC 9110 13.1.1): a weak ETag (W/"3") never matches,
// and neither does anything but one of our quoted versions, which are
// positive 32-bit integers (the database's version column).
func ifMatch(r *http.Request) (*int, error) {
	raw := r.Header.Get("If-Match")
	h := strings.TrimSpace(raw)
	if h == "" || h == "*" {
		return nil, nil
	}
	quote := func(s string) string { return strconv.QuoteToASCII(s) } // the header may not be UTF-8
	if strings.HasPrefix(h, "W/") {
		return nil, preconditionFailed(fmt.Sprintf("If-Match %s is a weak ETag, which never matches: send the ETag as the API returned it", quote(raw)))
	}
	inner, ok := strings.CutPrefix(h, `"`)
	if ok {
		inner, ok = strings.CutSuffix(inner, `"`)
	}
	v, err := strconv.ParseInt(inner, 10, 32)
	if !ok || err != nil || v < 1 || inner[0] == '+' {
		return nil, preconditionFailed(fmt.Sprintf("If-Match %s is not an ETag from this API", quote(raw)))
	}
	n := int(v)
	return &n, nil
}

// List pagination: ?limit=N&cursor=C. Items are ordered by id (UUIDv7, so
// by creation time); the cursor is the last id of the previous page.
const (
	defaultLimit = 50
	maxLimit     = 200
)

type page struct {
	limit int
	after uuid.UUID // uuid.Nil: from the start
}

func parsePage(r *http.Request) (page, error) {
	pg := page{limit: defaultLimit}
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return pg, badRequest("bad limit", FieldError{Field: "limit", Detail: fmt.Sprintf("must be an integer from 1 to %d", maxLimit)})
		}
		pg.limit = n
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		var id uuid.UUID
		if err == nil {
			id, err = uuid.FromBytes(b)
		}
		if err != nil {
			return pg, badRequest("bad cursor", FieldError{Field: "cursor", Detail: "not a cursor from a previous page's next_cursor"})
		}
		pg.after = id
	}
	return pg, nil
}

// listBody is the body of every list response.
type listBody[T any] struct {
	Items []T `json:"items"`
	// NextCursor fetches the next page; absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// writePage runs a keyset-paginated query and writes the page. query's
// last two parameters are the cursor id (exclusive) and the row limit,
// which writePage appends to args; dest gives a row's scan targets and key
// its id for the next cursor.
func writePage[T any](w http.ResponseWriter, r *http.Request, pool *pgxpool.Pool, query string,
	dest func(*T) []any, key func(T) uuid.UUID, args ...any) error {
	pg, err := parsePage(r)
	if err != nil {
		return err
	}
	rows, err := pool.Query(r.Context(), query, append(args, pg.after, pg.limit+1)...)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) {
		var v T
		return v, row.Scan(dest(&v)...)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pageOf(items, pg, key))
}

// loadInProject loads the resource whose id is the path parameter param
// and that belongs to the request's project (query takes id, project id);
// anything else is a 404 naming what.
func loadInProject[T any](r *http.Request, pool *pgxpool.Pool, param, what, query string, dest func(*T) []any) (T, error) {
	var v T
	id, err := pathID(r, param)
	if err != nil {
		return v, err
	}
	err = pool.QueryRow(r.Context(), query, id, projectFrom(r.Context()).ID).Scan(dest(&v)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, notFound(what)
	}
	return v, err
}

// pageOf trims items fetched with LIMIT page.limit+1 to the page and sets
// the cursor when there is more.
func pageOf[T any](items []T, pg page, id func(T) uuid.UUID) listBody[T] {
	out := listBody[T]{Items: items}
	if out.Items == nil {
		out.Items = []T{}
	}
	if len(items) > pg.limit {
		out.Items = items[:pg.limit]
		last := id(out.Items[pg.limit-1])
		out.NextCursor = base64.RawURLEncoding.EncodeToString(last[:])
	}
	return out
}
