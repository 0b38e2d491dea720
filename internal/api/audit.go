package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// auditEntry is one mutation: what happened to which resource. Who, when
// and from where come from the request. details must never hold secrets.
type auditEntry struct {
	action       string // "<resource>.<verb>", e.g. "project.create"
	resourceType string
	resourceID   string
	orgID        *uuid.UUID
	projectID    *uuid.UUID
	details      map[string]any
}

// audit records e inside the mutation's own transaction, so a change and
// its audit record land together or not at all. Every mutation passes
// here, so it is also where a request holding an Idempotency-Key marks the
// key applied, in that same transaction.
func (s *Server) audit(ctx context.Context, tx pgx.Tx, r *http.Request, e auditEntry) error {
	if err := markApplied(ctx, tx, e); err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	actorType, actorName := "anonymous", ""
	var actorID *uuid.UUID
	if p := PrincipalFrom(ctx); p != nil {
		actorType, actorName = string(p.Kind), p.Name
		aid := p.auditID()
		actorID = &aid
	}
	if e.projectID == nil {
		if pa := projectFrom(ctx); pa.ID != uuid.Nil {
			e.projectID, e.orgID = &pa.ID, &pa.OrgID
		}
	}
	details := e.details
	if details == nil {
		details = map[string]any{}
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (id, actor_type, actor_id, actor_name, action, resource_type,
		resource_id, org_id, project_id, remote_addr, request_id, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		id, actorType, actorID, actorName, e.action, e.resourceType, e.resourceID, e.orgID, e.projectID,
		remoteAddr(r), requestID(ctx), details)
	return err
}

// auditBody is an audit log record.
type auditBody struct {
	ID           uuid.UUID       `json:"id"`
	At           time.Time       `json:"at"`
	ActorType    string          `json:"actor_type"`
	ActorID      *uuid.UUID      `json:"actor_id,omitempty"`
	ActorName    string          `json:"actor_name"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id,omitempty"`
	OrgID        *uuid.UUID      `json:"org_id,omitempty"`
	ProjectID    *uuid.UUID      `json:"project_id,omitempty"`
	RemoteAddr   string          `json:"remote_addr"`
	RequestID    string          `json:"request_id,omitempty"`
	Details      json.RawMessage `json:"details"`
}

func (s *Server) auditResource() resource {
	return resource{prefix: "", tag: "audit", routes: []route{
		{method: http.MethodGet, path: "/audit", op: "listAudit", summary: "The instance's audit log, newest first (administrators)",
			access: anyPrincipal, resp: auditBody{}, list: true, handle: s.listAudit},
		{method: http.MethodGet, path: "/projects/{projectID}/audit", op: "listProjectAudit", summary: "A project's audit log, newest first",
			access: inProject, role: "owner", resp: auditBody{}, list: true, handle: s.listProjectAudit},
	}}
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	if p := PrincipalFrom(r.Context()); p.Kind != KindUser || !p.Admin {
		return forbidden("only administrators can read the instance's audit log; project owners can read their project's")
	}
	return s.queryAudit(w, r, nil)
}

func (s *Server) listProjectAudit(w http.ResponseWriter, r *http.Request) error {
	id := projectFrom(r.Context()).ID
	return s.queryAudit(w, r, &id)
}

// queryAudit pages newest first: the cursor is the oldest id seen.
func (s *Server) queryAudit(w http.ResponseWriter, r *http.Request, project *uuid.UUID) error {
	pg, err := parsePage(r)
	if err != nil {
		return err
	}
	before := pg.after
	if before == uuid.Nil {
		before = uuid.Max
	}
	rows, err := s.pool.Query(r.Context(), `SELECT id, at, actor_type, actor_id, actor_name, action, resource_type,
		resource_id, org_id, project_id, remote_addr, request_id, details FROM audit_log
		WHERE id < $1 AND ($2::uuid IS NULL OR project_id = $2) ORDER BY id DESC LIMIT $3`, before, project, pg.limit+1)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditBody, error) {
		var a auditBody
		err := row.Scan(&a.ID, &a.At, &a.ActorType, &a.ActorID, &a.ActorName, &a.Action, &a.ResourceType,
			&a.ResourceID, &a.OrgID, &a.ProjectID, &a.RemoteAddr, &a.RequestID, &a.Details)
		return a, err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, pageOf(items, pg, func(a auditBody) uuid.UUID { return a.ID }))
}
