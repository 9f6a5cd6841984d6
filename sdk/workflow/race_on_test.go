//go:build race

package workflow_test

// raceEnabled: the race detector slows workflow tasks several times over.
const raceEnabled = true
