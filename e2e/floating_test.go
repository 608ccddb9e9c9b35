package e2e

import (
	"testing"
	"time"

	"buoy/e2e/nscluster"
)

// These tests move real agents to new addresses inside network namespaces
// (package nscluster, on netlab) and check, through "buoy members --json"
// on every node, that every node shows every other one alive at its new
// address, and that a write commits through a follower afterwards. Each
// prints the measured convergence time on a line starting "CONVERGENCE:";
// none asserts it (bench/convergence does the timing).

// nsOptions are the options of every namespace cluster in these tests.
func nsOptions(t *testing.T) nscluster.Options {
	return nscluster.Options{Agent: agentBin, CLI: buoyBin, Dir: t.TempDir(), LogLevel: "debug"}
}

// logConvergence prints a change's convergence time.
func logConvergence(t *testing.T, scenario string, ch nscluster.Change) {
	t.Helper()
	t.Logf("CONVERGENCE: %s: %v (%s)", scenario, ch.Converged.Round(time.Millisecond), ch.What)
}

// TestAddressChanges: four public nodes on one network; one node's address
// is replaced, then three of the four at once (the leader among them),
// then a node is restarted on a new address with its old data dir. Each
// step starts from where the one before left the cluster, so the first
// failure ends the test.
func TestAddressChanges(t *testing.T) {
	c := nscluster.Flat(t, nsOptions(t), 4)
	steps := []struct {
		name   string
		change func() nscluster.Change
	}{
		{"one node", func() nscluster.Change { return c.ReplaceAddrs(c.Follower()) }},
		{"three of four", func() nscluster.Change { return c.ReplaceAddrs(c.Except(c.Follower())...) }},
		{"restart on a new address", func() nscluster.Change { return c.RestartOnNewAddr(c.Follower()) }},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			defer c.Use(t)()
			logConvergence(t, st.name, st.change())
		})
		if !ok {
			return
		}
	}
}

// TestNATWANChange: two public nodes and two nodes behind one home router
// (masquerade, no port forwards); the router's WAN address is replaced and
// its NAT state lost, as when the ISP hands out a new address.
func TestNATWANChange(t *testing.T) {
	c := nscluster.NAT(t, nsOptions(t))
	logConvergence(t, "NAT WAN change", c.ReplaceWAN())
}
