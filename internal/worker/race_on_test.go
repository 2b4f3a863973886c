//go:build race

package worker_test

// raceEnabled: the race detector instruments every function and doubles
// the stack guard, so stack sizes measured under it are not production's.
const raceEnabled = true
