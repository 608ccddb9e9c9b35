// Package failover decides which node holds each failover role and when a
// node may believe it holds one, so that no two nodes ever do at the same
// instant.
//
// It is pure, in the manner of etcd-io/raft: inputs go in with the current
// time as an argument, decisions come out as values (commands to commit,
// messages to send, hook events to run) that the node carries out. It opens
// no sockets, starts no goroutines, never reads the clock and imports only
// the standard library; a test keeps it so.
//
// # Parts
//
//   - Assigner, on the Raft leader: from the role configs, the committed
//     assignments, the nodes alive to the quorum and their health, proposes
//     Commands (assign or release, each creating the role's next epoch).
//   - Witness, on every node: acknowledges renewals of the holder its
//     replicated state names, and after each acknowledgement promises, for
//     Lease+Margin of its own clock, not to acknowledge a newer holder.
//   - Holder, on every node: renews the roles assigned to it, believes it
//     holds a role for Lease-Guard after sending a renewal a majority of
//     voters acknowledged, and emits the promote, demote and change events.
//   - Assignment.Apply: how the replicated state applies a Command; it
//     refuses any command that does not create exactly the next epoch.
//   - Rerun: which hook to run after a restart or a healed partition so that
//     the last hook run matches the node's state.
//
// # Why no two nodes hold a role
//
// Leases are durations on each node's own monotonic clock, started by an
// event that node saw; no instant crosses the network. A holder counts a
// renewal round only once a majority of voters acknowledged it, and
// believes until Lease-Guard after it sent the round. Any two majorities
// share a voter, and that voter's Witness acknowledged the old holder's
// round after it was sent, then kept its promise for Lease+Margin before
// acknowledging the new holder, or received the old holder's Release first.
// With clock rates within MaxDrift (ρ) of true time, the old belief ends
// within (Lease-Guard)/(1-ρ) of true time and the new one starts no earlier
// than (Lease+Margin)/(1+ρ), so Timing.Validate requires
// (Lease-Guard)(1+ρ) < (Lease+Margin)(1-ρ). Epochs, created one at a time
// through Raft, fence whatever still acts on an old belief. A restarted
// Witness has forgotten its promises and acts as if it had acknowledged
// everything at its start. The leader plays no part in this argument: it
// waits for its own Witness before assigning a role only so that the name
// never points at a node that cannot act yet. Roles do not depend on the
// leader either: a holder renews with any majority, so a Raft election
// does not move or drop roles.
//
// A crashed process believes nothing, but the services its hooks started
// may still run: on restart, Rerun makes it run demote first.
//
// # How the node drives it
//
// Times passed in are readings of the node's monotonic clock (time.Now
// values carry one), never times received from another node.
//
//	on start:        w := NewWitness(self, timing, now); h := NewHolder(self, incarnation, timing);
//	                 per role: run the hook Rerun(self, persisted run, applied, false) returns;
//	                 carry out h.Assign(applied assignment, now)
//	after an apply:  carry out h.Assign(assignment, now) for each role that changed;
//	                 the leader plans
//	Renewal from p:  if ack, err := w.Renew(r, applied[r.Role], now); err == nil, send ack to p
//	Ack:             carry out h.Ack(ack, raft voters, now)
//	Release:         w.Release(r); the leader plans
//	at Output.Next:  carry out h.Tick(now)
//	carry out:       run Events through the hook runner (in order, one at a time per role;
//	                 it skips a Change whose epoch it already ran); send each Renewal to
//	                 every voter (to itself: w.Renew, then h.Ack); send each Release to
//	                 every node once the Demote before it has run
//	before acting:   h.Holds(role, now)
//	leader:          on gaining leadership a := NewAssigner(timing); on every change of the
//	                 View (apply, liveness, health, Release) and at Plan.Next, propose
//	                 a.Plan(view, w, now).Commands; the FSM applies them with Assignment.Apply
//	move:            a.Move(role, node, view, now) on the leader
//
// # Timing profiles and the failover arithmetic
//
// After a kill -9 of the holder, its lease is free once the witnesses'
// promises to its last acknowledged round run out: Lease+Margin after that
// round, which was on average Renew/2 (at most Renew) old. Then the leader
// commits the new assignment (a Raft round trip and fsync), the new holder
// applies it (a follower learns of a commit within hashicorp/raft's
// CommitTimeout, 50ms by default), sends a renewal and promotes on the
// first majority (one round trip). So failover ≈ Lease+Margin - Renew/2 +
// overhead, with the overhead about 50-200ms.
//
// default (home links): Renew 250ms, Retry 50ms, Lease 1.2s, Guard 300ms,
// Margin 100ms, MaxDrift 1%.
//
//   - failover: 1.3s - 0.125s + overhead ≈ 1.2-1.4s median, ≤ 1.55s worst
//     (target: median ≤ 1.5s, max ≤ 3s); the simulator measures median
//     1.35s, max 1.54s (TestFailoverTimes).
//   - a holder keeps its role through 2 lost renewal rounds in a row (an
//     outage of up to 0.65-0.9s); a third costs it the role.
//   - its demote hook starts at least Guard+Margin less drift ≈ 378ms
//     before any other node can be acknowledged, and the lease tolerates
//     clock rates up to (Guard+Margin)/(2·Lease+Margin-Guard) = 18% apart.
//
// lan: Renew 75ms, Retry 15ms, Lease 350ms, Guard 100ms, Margin 50ms,
// MaxDrift 1%.
//
//   - failover: 0.4s - 0.037s + overhead ≈ 0.4-0.45s median, ≤ 0.5s worst
//     (target: median ≤ 0.5s); simulated median 440ms, max 498ms.
//   - survives 2 lost rounds in a row (an outage up to 175-250ms); the
//     demote hook has ≥ 143ms; clock rates may be 23% apart.
//
// If the crashed holder was also the Raft leader, the election runs at the
// same time as the lease: hashicorp/raft's defaults (heartbeat and
// election timeouts of 1s) take 1-2s to elect, so failover ≈ max(election,
// lease) + overhead: simulated median 1.5s, max 2.2s (default), and with
// Raft timeouts tuned for a LAN (elections in 300-600ms) median 0.48s, max
// 0.67s (lan). The Assigner therefore gives a vacant role to a node other
// than the leader when priorities tie; the lan profile wants Raft's own
// timeouts lowered to match.
package failover
