package buoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"buoy/internal/failover"
	"buoy/internal/hooks"
	"buoy/internal/store"
)

// runRecord is what this node persists per role about its hooks, so that
// after a restart it knows whether its scripts last saw it promoted
// (failover.Rerun) and which change hooks already ran.
type runRecord struct {
	// State is "promote", "demote" or "" (neither ever ran).
	State string `json:"state,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	Done  bool   `json:"done,omitempty"`
	// Change is the newest epoch whose change hook ran.
	Change uint64 `json:"change,omitempty"`
	// Hooks are the role's hooks when it was last promoted here: the
	// demote hook to run after a restart, before the replicated state
	// (which holds the definition) has been replayed, or after the role
	// was deleted.
	Hooks store.RoleHooks `json:"hooks,omitzero"`
}

func (rr runRecord) run() failover.Run {
	run := failover.Run{Epoch: rr.Epoch, Done: rr.Done}
	switch rr.State {
	case "promote":
		run.State = failover.EventPromote
	case "demote":
		run.State = failover.EventDemote
	}
	return run
}

// nextSession reads, increments and durably writes the session counter:
// every run of the process gets a larger session than the ones before.
func nextSession(dir string) (uint64, error) {
	path := filepath.Join(dir, sessionFile)
	var prev uint64
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if prev, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return 0, fmt.Errorf("roles session file %s: %w (delete it to start over)", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("roles session: %w", err)
	}
	next := prev + 1
	if err := writeFileSync(path, []byte(strconv.FormatUint(next, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("roles session: %w", err)
	}
	return next, nil
}

func loadRuns(dir string) (map[string]runRecord, error) {
	runs := map[string]runRecord{}
	b, err := os.ReadFile(filepath.Join(dir, runsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return runs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("roles hook state: %w", err)
	}
	if err := json.Unmarshal(b, &runs); err != nil {
		return nil, fmt.Errorf("roles hook state %s: %w (delete it to forget which hooks ran)", filepath.Join(dir, runsFile), err)
	}
	return runs, nil
}

// saveRunsLocked persists the run records; an error is logged, as the
// hooks have run whether or not the record of it survives.
func (r *roleManager) saveRunsLocked() {
	b, err := json.MarshalIndent(r.runs, "", "  ")
	if err == nil {
		err = writeFileSync(filepath.Join(r.dir, runsFile), b)
	}
	if err != nil {
		r.n.log.Error("saving which role hooks ran", "err", err)
	}
}

// writeFileSync replaces path with data atomically and durably.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// carryOutLocked does what a Holder output asks: events become hooks (a
// Release waits for the Demote of its epoch), renewals go to every voter,
// and the holder's next deadline is kept.
func (r *roleManager) carryOutLocked(out failover.Output, now time.Time) {
	r.holderNext = out.Next
	releases := out.Releases
	for _, ev := range out.Events {
		var after []failover.Release
		if ev.Kind == failover.EventDemote {
			releases = slices.DeleteFunc(releases, func(rel failover.Release) bool {
				if rel.Role == ev.Role && rel.Epoch == ev.Epoch {
					after = append(after, rel)
					return true
				}
				return false
			})
		}
		r.runEventLocked(ev, after, now)
	}
	for _, rel := range releases {
		r.sendReleaseLocked(rel)
	}
	for _, rn := range out.Renewals {
		r.renewLocked(rn, now)
	}
}

// hooksLocked returns the hooks to run for role: its definition's, or,
// for a role no longer (or not yet) in the state, those it had when this
// node last promoted it.
func (r *roleManager) hooksLocked(role string) store.RoleHooks {
	if def, ok := r.n.fsm.View().Role(role); ok {
		return def.Hooks
	}
	return r.runs[role].Hooks
}

// runEventLocked records an event, tells the callbacks and queues its
// hook. releases go out once the hook has ended.
func (r *roleManager) runEventLocked(ev failover.Event, releases []failover.Release, now time.Time) {
	kind := hooks.Event(ev.Kind.String())
	hk := r.hooksLocked(ev.Role)
	holderAddr := r.addrOf(ev.Holder)
	r.n.log.Info("role "+string(kind), "role", ev.Role, "epoch", ev.Epoch, "holder", ev.Holder, "previous", ev.Previous, "cause", ev.Cause)
	r.auditLocked(hooks.Entry{Kind: hooks.KindTransition, Role: ev.Role, Event: kind, Epoch: ev.Epoch, Node: r.self,
		Holder: ev.Holder, HolderAddr: holderAddr, Previous: ev.Previous, Reason: string(ev.Cause)})
	r.emitLocked(RoleEvent{Kind: string(kind), Role: ev.Role, Epoch: ev.Epoch, Node: r.self, Holder: ev.Holder,
		Previous: ev.Previous, Cause: string(ev.Cause), At: now})

	rec := r.runs[ev.Role]
	var path string
	switch ev.Kind {
	case failover.EventChange:
		if ev.Epoch <= rec.Change {
			return // this epoch's change hook ran before a restart
		}
		rec.Change = ev.Epoch
		path = hk.Change
	case failover.EventPromote:
		rec.State, rec.Epoch, rec.Done, rec.Hooks = "promote", ev.Epoch, false, hk
		path = hk.Promote
	case failover.EventDemote:
		rec.State, rec.Epoch, rec.Done = "demote", ev.Epoch, false
		path = hk.Demote
	}
	if path == "" {
		rec.Done = true
	}
	r.runs[ev.Role] = rec
	r.saveRunsLocked()
	if path == "" {
		for _, rel := range releases {
			r.sendReleaseLocked(rel)
		}
		return
	}
	done, err := r.hooks.Enqueue(hooks.Request{
		Role: ev.Role, Event: kind, Path: path, Epoch: ev.Epoch, Node: r.self,
		Holder: ev.Holder, HolderAddr: holderAddr, Previous: ev.Previous, Timeout: hk.Timeout,
	})
	if err != nil {
		r.n.log.Error("hook not run", "role", ev.Role, "event", kind, "err", err)
		r.finishLocked(ev, hooks.Result{Err: err}, now)
		for _, rel := range releases {
			r.sendReleaseLocked(rel)
		}
		return
	}
	r.busy[ev.Role]++
	r.wg.Go(func() {
		res := <-done
		r.mu.Lock()
		r.busy[ev.Role]--
		r.finishLocked(ev, res, time.Now())
		r.mu.Unlock()
		r.sendAfter(releases)
		r.poke()
	})
}

// finishLocked records that ev's hook ended. A promote hook that failed
// counts as a failed check of the role for promoteHoldDown, so that the
// leader moves the role on.
func (r *roleManager) finishLocked(ev failover.Event, res hooks.Result, now time.Time) {
	if ev.Kind == failover.EventChange {
		return
	}
	if rec := r.runs[ev.Role]; rec.Epoch == ev.Epoch && rec.State == ev.Kind.String() && !rec.Done {
		rec.Done = true
		r.runs[ev.Role] = rec
		r.saveRunsLocked()
	}
	if ev.Kind == failover.EventPromote && res.Err != nil {
		r.penalty[ev.Role] = now.Add(promoteHoldDown)
		r.n.log.Warn("promote hook failed; the role counts as failing its checks here for a while",
			"role", ev.Role, "epoch", ev.Epoch, "for", promoteHoldDown, "err", res.Err)
		r.pokePing()
	}
}

// sendAfter sends releases once a hook has ended; the caller does not
// hold the lock.
func (r *roleManager) sendAfter(releases []failover.Release) {
	if len(releases) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rel := range releases {
		r.sendReleaseLocked(rel)
	}
}

// rerunAllLocked runs, for every role whose hooks are idle, the hook that
// makes the last one run match whether this node holds the role: demote
// after a crash or a partition left it promoted, an interrupted demote
// again.
func (r *roleManager) rerunAllLocked(now time.Time) {
	s := r.n.fsm.View()
	for _, role := range slices.Sorted(maps.Keys(r.runs)) {
		rec := r.runs[role]
		if r.busy[role] > 0 || rec.State == "" || rec.Done && rec.State == "demote" {
			continue
		}
		_, holding := r.holder.Holds(role, now)
		ev, ok := failover.Rerun(r.self, rec.run(), s.Assignment(role), holding)
		if !ok {
			continue
		}
		r.runEventLocked(ev, nil, now)
	}
}

// auditLocked appends to the audit log; an error is logged.
func (r *roleManager) auditLocked(e hooks.Entry) {
	if err := r.audit.Append(e); err != nil {
		r.n.log.Error("role audit log", "err", err)
	}
}
