//go:build race

package script_test

// peakLimit (see attacks_test.go) under the race detector, which makes one
// doubling of a 512 MiB string take most of a second: the interrupt lands
// one doubling later than without it, and the heap, which counts the
// unswept halves too, peaked at 1,792 MiB (a 1 GiB string) on the CI
// machine type. The time budget ends an unguarded attack about as early
// here, so what this bound checks under -race is that nothing runs away
// past it; the error checks still tell a memory stop from a time stop.
const peakLimit = 4 << 29
