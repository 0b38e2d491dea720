// Package opbench holds the per-record cost benchmarks of the domain
// operators next to filter and map, all through one harness so that their
// numbers compare (docs/performance.md, "Operators: cost per record").
// It has only tests; run them with make bench or
// go run ./bench/benchreport -pkgs ./catalog/operatortest/opbench.
package opbench
