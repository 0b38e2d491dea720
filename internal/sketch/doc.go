// Package sketch holds the mergeable, serializable summaries that stateful
// aggregates keep instead of raw values: a HyperLogLog for count_distinct
// and a DDSketch-style quantile sketch for percentiles.
//
// Sketches are persisted in state stores and changelog topics, so everything
// that decides their contents is stable across processes and restarts: the
// hash is written here (not hash/maphash, whose seed is per process), and a
// sketch's state depends only on the multiset of values added, never on the
// order of Add and Merge calls. Two sketches built from the same values on
// different machines marshal to the same bytes.
//
// The package has no dependencies beyond the standard library and no
// package-level mutable state.
package sketch
