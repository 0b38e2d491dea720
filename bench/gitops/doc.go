// Package gitops holds, in its test files, the GitOps benchmarks of
// docs/performance.md ("GitOps"), run by `make bench` like every other
// benchmark, and in this package the pieces they share that do not need a
// test: reading a process's CPU time and memory from /proc, and a simulated
// runner that speaks internal/agentproto over HTTP.
//
//   - BenchmarkPushToRunning: from `git push` returning to the first output
//     record of the new revision on every one of 3 `runner agent`
//     processes, over 20 pushes, with `controlplane serve` on a throwaway
//     PostgreSQL as a separate process and the runners on one Kafka.
//   - BenchmarkIdleRunners200: the control plane's resident memory and CPU
//     while 200 simulated runners hold their long-polls and post a heartbeat
//     every agentproto.HeartbeatInterval.
//
// `go test ./bench/gitops` without -bench runs both once at a tiny size
// (TestPushToRunning, TestIdleRunners) to keep them working.
package gitops
