//go:build !race

package script

const raceShadow = 1
