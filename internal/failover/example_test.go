package failover_test

import (
	"fmt"
	"time"

	"buoy/internal/failover"
)

// A leader assigns a vacant role, the new holder renews with a majority of
// witnesses and is promoted, and its belief ends Lease-Guard after the
// renewal unless it renews again.
func Example() {
	tm := failover.DefaultTiming()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // a monotonic reading in real use
	nodes := []string{"pi1", "pi2", "pi3"}
	all := map[string]bool{"pi1": true, "pi2": true, "pi3": true}
	witness := map[string]*failover.Witness{}
	for _, n := range nodes {
		witness[n] = failover.NewWitness(n, tm, now)
	}

	// pi1 leads Raft and plans.
	view := failover.View{
		Roles:   []failover.RoleConfig{{Name: "web"}},
		Members: nodes, Alive: all, Leader: "pi1",
		Healthy: map[string]map[string]bool{"web": all},
	}
	plan := failover.NewAssigner(tm).Plan(view, witness["pi1"], now)
	fmt.Println(plan.Commands[0])

	// Raft commits the command; every node applies it.
	web, err := failover.Assignment{}.Apply(plan.Commands[0], now)
	if err != nil {
		fmt.Println(err)
		return
	}

	// pi2 renews; pi1 and pi2 acknowledge: a majority.
	pi2 := failover.NewHolder("pi2", 1, tm)
	out := pi2.Assign(web, now)
	for _, r := range out.Renewals {
		for _, n := range []string{"pi1", "pi2"} {
			ack, err := witness[n].Renew(r, web, now)
			if err != nil {
				fmt.Println(err)
				return
			}
			for _, ev := range pi2.Ack(ack, nodes, now).Events {
				fmt.Println(ev)
			}
		}
	}
	_, held := pi2.Holds("web", now.Add(899*time.Millisecond))
	fmt.Println("holds after 899ms:", held)
	_, held = pi2.Holds("web", now.Add(900*time.Millisecond))
	fmt.Println("holds after 900ms:", held)
	// Output:
	// web: assign pi2 epoch 1 (vacant)
	// web promote epoch 1 on pi2 (holder "pi2", previous "", quorum)
	// holds after 899ms: true
	// holds after 900ms: false
}
