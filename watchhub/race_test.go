//go:build race

package watchhub

// raceEnabled scales the randomized test down under the race detector.
const raceEnabled = true
