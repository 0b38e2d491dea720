// Package demo holds the files `controlplane dev` commits as the first
// revision of the demo project: pipelines built on the domain operators
// (a delivery fleet's zones, trips, driving events and idling; cold-chain
// sensors; card payments) with their tests. The dev platform's traffic
// generator (demotraffic.go) writes their input topics, so they have
// outputs and lag to look at from the start.
package demo

import "embed"

// Files is the repository's content.
//
//go:embed README.md pipelines
var Files embed.FS
