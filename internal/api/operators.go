package api

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/catalog"
	docs "github.com/sluicehq/sluice/internal/operatordocs"
)

// operatorBody is a catalog operator as the IDE and docs use it: the same
// spec that the runner compiles against.
type operatorBody struct {
	Name        string `json:"name"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
	Stateful    bool   `json:"stateful"`
	ChangesKey  bool   `json:"changes_key"`
	// ConfigSchema is the JSON Schema (draft 2020-12) of the step's value.
	ConfigSchema json.RawMessage   `json:"config_schema"`
	Examples     []operatorExample `json:"examples"`
	// Docs is the operator's generated Markdown page.
	Docs string `json:"docs,omitempty"`
}

type operatorExample struct {
	Title   string   `json:"title"`
	Summary string   `json:"summary,omitempty"`
	Step    string   `json:"step"`
	Input   []any    `json:"input"`
	Output  []any    `json:"output"`
	DLQ     []string `json:"dlq,omitempty"`
}

func (s *Server) operatorResource() resource {
	return resource{prefix: "/operators", tag: "operators", routes: []route{
		{method: http.MethodGet, path: "", op: "listOperators", summary: "List the operator catalog with config schemas and examples",
			access: anyPrincipal, resp: operatorBody{}, list: true, handle: s.listOperators},
		{method: http.MethodGet, path: "/{name}", op: "getOperator", summary: "Get one operator, with its docs page",
			access: anyPrincipal, resp: operatorBody{}, handle: s.getOperator},
	}}
}

func operatorOf(spec *catalog.Spec, pages map[string][]byte) operatorBody {
	o := operatorBody{
		Name: spec.Name, Summary: spec.Summary, Description: spec.Description,
		Stateful: spec.State != nil, ChangesKey: spec.ChangesKey,
		ConfigSchema: json.RawMessage(spec.Config), Examples: []operatorExample{},
	}
	if !json.Valid(o.ConfigSchema) {
		o.ConfigSchema = json.RawMessage("{}")
	}
	for _, ex := range spec.Examples {
		e := operatorExample{Title: ex.Title, Summary: ex.Summary, Step: ex.Step, Input: ex.Input, Output: ex.Output}
		for _, r := range ex.DLQ {
			e.DLQ = append(e.DLQ, string(r))
		}
		o.Examples = append(o.Examples, e)
	}
	if pages != nil {
		o.Docs = string(pages[docs.OperatorPath(spec.Name)])
	}
	return o
}

func (s *Server) listOperators(w http.ResponseWriter, r *http.Request) error {
	specs := s.reg.Specs()
	items := make([]operatorBody, 0, len(specs))
	for _, spec := range specs {
		items = append(items, operatorOf(spec, s.operatorDocs))
	}
	// The catalog is small and fixed for the life of the process: one page.
	return writeJSON(w, http.StatusOK, listBody[operatorBody]{Items: items})
}

func (s *Server) getOperator(w http.ResponseWriter, r *http.Request) error {
	spec, ok := s.reg.Lookup(chi.URLParam(r, "name"))
	if !ok {
		return notFound("operator")
	}
	return writeJSON(w, http.StatusOK, operatorOf(spec, s.operatorDocs))
}
