//go:build !race

package watchhub

const raceEnabled = false
