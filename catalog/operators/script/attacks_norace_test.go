//go:build !race

package script_test

// peakLimit (see attacks_test.go): on a machine too busy to run the
// watchdog at once, a string that doubles in one instruction can double
// once or twice more before the interrupt lands: 1,025 MiB was seen under
// load, so the bound is 1.5 GiB. It still fails on an unguarded attack,
// which grows until the time budget (gigabytes).
const peakLimit = 3 << 29
