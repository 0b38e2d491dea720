//go:build race

package script

// raceShadow is how much the race detector's shadow memory multiplies
// what the heap maps.
const raceShadow = 5
