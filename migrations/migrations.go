// Package migrations embeds the control plane's SQL migrations. Files are
// named NNNN_description.sql and applied in name order, each once, by
// internal/database.Migrate.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
