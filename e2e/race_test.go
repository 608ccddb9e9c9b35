//go:build race

package e2e

// raceEnabled: the tests run under -race, so the agents are built with it
// too, and a data race in any agent process fails the test.
const raceEnabled = true
