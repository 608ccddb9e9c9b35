package buoy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"buoy/internal/api"
	"buoy/internal/failover"
	"buoy/internal/store"
)

// list builds Node.Roles: the implicit leader role, then every defined
// role with its committed assignment, its candidates as the leader last
// described them, and this node's checks.
func (r *roleManager) list(now time.Time) []RoleInfo {
	s := r.n.fsm.View()
	members := memberNames(s)
	leader := r.n.raft.Leader()
	out := []RoleInfo{{
		Name: LeaderRole, Holder: leader, HolderAddr: r.addrOf(leader), Epoch: r.n.raft.Raft().CurrentTerm(),
		Held: leader == r.self, Implicit: true, Candidates: []RoleCandidate{},
	}}
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := !r.viewAt.IsZero() && now.Sub(r.viewAt) < 4*r.t.Renew+r.aliveFor
	for _, def := range s.RoleList() {
		a := s.Assignment(def.Name)
		info := RoleInfo{
			Name: def.Name, Holder: a.Holder, HolderAddr: r.addrOf(a.Holder), Epoch: a.Epoch, Since: a.Since,
			Previous: a.Previous, Preempt: def.Preempt, TTL: def.Config().EffectiveTTL().String(),
			Candidates: []RoleCandidate{},
		}
		_, info.Held = r.holder.Holds(def.Name, now)
		names := slices.Sorted(maps.Keys(def.Candidates))
		if len(def.Candidates) == 0 {
			names = slices.Sorted(slices.Values(members))
		}
		for _, node := range names {
			c := RoleCandidate{Node: node, Priority: def.Candidates[node], Member: slices.Contains(members, node), Alive: "unknown", Health: "unknown"}
			switch {
			case !c.Member:
				c.Alive, c.Health = "no", "unknown"
			case fresh:
				c.Alive, c.Health = "no", "failing"
				if slices.Contains(r.view.Alive, node) {
					c.Alive = "yes"
				}
				if slices.Contains(r.view.Healthy[def.Name], node) {
					c.Health = "passing"
				}
			}
			if node == r.self {
				c.Alive = "yes"
				c.Health = "failing"
				if ok, _ := r.localHealthLocked(def.Name, now); ok {
					c.Health = "passing"
				}
			}
			info.Candidates = append(info.Candidates, c)
		}
		_, info.Local = r.localHealthLocked(def.Name, now)
		if c := r.checks[def.Name]; c != nil {
			for _, ch := range c.Status().Checks {
				rc := api.RoleCheck{Name: ch.Name, Healthy: ch.Healthy, Probes: ch.Probes, LastAt: ch.LastAt}
				if ch.LastErr != nil {
					rc.Error = ch.LastErr.Error()
				}
				info.Checks = append(info.Checks, rc)
			}
		}
		out = append(out, info)
	}
	return out
}

// putConfigured writes Config.Roles into the replicated state once the
// cluster has a leader: each role missing there, or changed in this
// node's config since it last wrote it. A role this node wrote before and
// no longer configures is deleted, unless someone changed it since. It
// retries until it succeeds or the node closes.
func (r *roleManager) putConfigured() {
	path := filepath.Join(r.dir, appliedFile)
	applied := map[string]store.Role{}
	b, err := os.ReadFile(path)
	if len(r.n.cfg.Roles) == 0 && errors.Is(err, fs.ErrNotExist) {
		return // nothing configured now or before
	}
	if err == nil {
		if err := json.Unmarshal(b, &applied); err != nil {
			r.n.log.Warn("forgetting which configured roles were written", "file", path, "err", err)
			applied = map[string]store.Role{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.n.log.Warn("reading which configured roles were written", "err", err)
	}
	if len(r.n.cfg.Roles) == 0 && len(applied) == 0 {
		return
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := r.putConfiguredOnce(applied)
		if err == nil {
			break
		}
		r.n.log.Warn("configured roles not written yet; retrying", "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-r.n.ctx.Done():
			return
		}
	}
	want := map[string]store.Role{}
	for _, def := range r.n.cfg.Roles {
		want[def.Name] = def
	}
	b, err = json.Marshal(want)
	if err == nil {
		err = writeFileSync(path, b)
	}
	if err != nil {
		r.n.log.Warn("recording which configured roles were written", "err", err)
	}
}

func (r *roleManager) putConfiguredOnce(applied map[string]store.Role) error {
	ctx, cancel := context.WithTimeout(r.n.ctx, 30*time.Second)
	defer cancel()
	if err := r.n.WaitReady(ctx); err != nil {
		return err
	}
	s := r.n.fsm.View()
	members := memberNames(s)
	configured := map[string]bool{}
	for _, def := range r.n.cfg.Roles {
		configured[def.Name] = true
		cur, ok := s.Role(def.Name)
		last, wrote := applied[def.Name]
		if ok && (cur.Equal(def) || wrote && last.Equal(def)) {
			continue // in place, or changed at run time since this config was written
		}
		if err := def.Config().Validate(members); err != nil {
			// Candidates that have not joined yet: the role is written
			// anyway, and they become candidates when they join.
			r.n.log.Warn("configured role names nodes that are not members; they cannot hold it until they join", "role", def.Name, "err", err)
		}
		if err := r.n.raft.Apply(ctx, store.NewRolePut(def)); err != nil {
			return fmt.Errorf("define role %s: %w", def.Name, err)
		}
		r.n.log.Info("defined role from the config", "role", def.Name)
	}
	for name, last := range applied {
		if configured[name] {
			continue
		}
		if cur, ok := s.Role(name); ok && cur.Equal(last) {
			if err := r.n.raft.Apply(ctx, store.NewRoleDelete(name)); err != nil && !errors.Is(err, store.ErrRoleUnknown) {
				return fmt.Errorf("delete role %s: %w", name, err)
			}
			r.n.log.Info("deleted role no longer in the config", "role", name)
		}
	}
	return nil
}

// roleOverlay adds <role>.<zone> for every defined role to the cluster
// zone's overlay: the holder's address with the role's TTL, or, with no
// holder (or no known address), an empty name that answers NODATA.
func (n *Node) roleOverlay(s *store.State, origin string, rrs []dns.RR) ([]dns.RR, []string) {
	var empty []string
	for _, def := range s.RoleList() {
		name := def.Name + "." + origin
		holder := s.Assignment(def.Name).Holder
		var ip = n.nodeIP(holder)
		if holder == "" || !ip.IsValid() {
			empty = append(empty, name)
			continue
		}
		ttl := uint32(max(def.Config().EffectiveTTL()/time.Second, 1))
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: ttl}
		if ip.Is4() {
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: ip.AsSlice()})
		} else {
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
		}
	}
	return rrs, empty
}

// roleShapeKey names what the role names in DNS depend on besides
// addresses: the roles, their holders and TTLs.
func roleShapeKey(s *store.State) string {
	var b strings.Builder
	for _, def := range s.RoleList() {
		fmt.Fprintf(&b, "%s=%s/%d,", def.Name, s.Assignment(def.Name).Holder, def.TTL)
	}
	return b.String()
}

// The HTTP API's role endpoints (api.RolesBackend).

func (b apiBackend) RoleList(ctx context.Context) ([]api.RoleInfo, error) {
	return b.Roles(), nil
}

func (b apiBackend) RoleGet(ctx context.Context, name string) (api.RoleInfo, api.RoleSpec, error) {
	for _, info := range b.Roles() {
		if info.Name != name {
			continue
		}
		if info.Implicit {
			return info, api.RoleSpec{}, nil
		}
		def, ok := b.fsm.View().Role(name)
		if !ok {
			break
		}
		return info, api.SpecOf(def), nil
	}
	return api.RoleInfo{}, api.RoleSpec{}, fmt.Errorf("role %s: %w", name, store.ErrRoleUnknown)
}

func (b apiBackend) RolePut(ctx context.Context, name string, spec api.RoleSpec) error {
	def, err := spec.Role(name)
	if err != nil {
		return err
	}
	return b.PutRole(ctx, def)
}

func (b apiBackend) RoleDelete(ctx context.Context, name string) error {
	if name == failover.LeaderRole {
		return fmt.Errorf("delete role %s: %w: it is the implicit role that follows the Raft leader", name, failover.ErrInvalidRole)
	}
	return b.DeleteRole(ctx, name)
}

func (b apiBackend) RoleMove(ctx context.Context, name, node string) error {
	if name == failover.LeaderRole {
		return fmt.Errorf("move role %s: %w: it follows the Raft leader; it cannot be moved", name, failover.ErrInvalidRole)
	}
	return b.MoveRole(ctx, name, node)
}

func (b apiBackend) RoleHistory(ctx context.Context, role string, limit int) ([]api.HistoryEntry, error) {
	return b.Node.RoleHistory(role, limit)
}
