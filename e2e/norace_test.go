//go:build !race

package e2e

// raceEnabled: the tests run without -race; so are the agents built.
const raceEnabled = false
