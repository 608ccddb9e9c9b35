package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"buoy/bench/internal/labsession"
	"buoy/e2e/netlab"
)

// keepalivedConf is one node's configuration: VRRP with Debian's usual
// settings (advert_int 1, equal priorities), every node starting as
// backup, nopreempt so that a restarted node does not take the address
// back (like a Buoy role with preempt off), and the notify scripts
// logging every state change (two backups with equal priority may both
// become master for a moment; the one with the lower address then goes
// back to backup).
const keepalivedConf = `global_defs {
    router_id %[1]s
    script_user root
}
vrrp_instance VI_1 {
    state BACKUP
    nopreempt
    interface %[2]s
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        198.51.100.100/24
    }
    notify_master "%[3]s %[1]s MASTER"
    notify_backup "%[3]s %[1]s BACKUP"
    notify_fault "%[3]s %[1]s FAULT"
}
`

// keepalivedNode is one keepalived in its namespace.
type keepalivedNode struct {
	name string
	host *netlab.Host
	dir  string
	args []string
	proc *netlab.Proc
}

// measureKeepalived runs the trials against keepalived: each kills the
// master's keepalived (its VRRP process and its parent, with SIGKILL, so
// that it sends no goodbye advertisement) and times how long until
// another node's notify_master script runs.
func measureKeepalived(ctx context.Context, cfg config, dir string, out io.Writer) result {
	r := result{name: "keepalived (advert_int 1)"}
	if _, err := exec.LookPath("keepalived"); err != nil {
		r.skippedReason = errNoKeepalived.Error()
		return r
	}
	s := labsession.New(out, cfg.verbose)
	defer s.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.skippedReason = err.Error()
		return r
	}
	notify := filepath.Join(dir, "notify")
	masters := filepath.Join(dir, "masters")
	script := fmt.Sprintf("#!/bin/sh\necho \"$(date +%%s.%%N) $1 $2\" >> %s\n", masters)
	if err := os.WriteFile(notify, []byte(script), 0o700); err != nil {
		r.skippedReason = err.Error()
		return r
	}
	var nodes []*keepalivedNode
	if !s.Run(func() {
		lab := netlab.New(s)
		sw := lab.Switch("vrrp")
		for i := range 3 {
			h := lab.Host(fmt.Sprintf("k%d", i+1))
			h.Attach(sw, fmt.Sprintf("198.51.100.%d/24", 21+i))
			k := &keepalivedNode{name: h.Name(), host: h, dir: filepath.Join(dir, h.Name())}
			if err := os.MkdirAll(k.dir, 0o700); err != nil {
				s.Fatalf("%v", err)
			}
			conf := filepath.Join(k.dir, "keepalived.conf")
			if err := os.WriteFile(conf, fmt.Appendf(nil, keepalivedConf, k.name, h.Ifname(sw), notify), 0o600); err != nil {
				s.Fatalf("%v", err)
			}
			k.args = []string{"--dont-fork", "--log-console", "--vrrp", "--dont-respawn", "--use-file", conf,
				"--pid", filepath.Join(k.dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(k.dir, "vrrp.pid"),
				"--checkers_pid", filepath.Join(k.dir, "checkers.pid")}
			k.start(s, lab)
			nodes = append(nodes, k)
			s.Cleanup(func() {
				if k.running() {
					k.kill()
				}
			})
		}
		// The first master appears after the master-down interval.
		if _, _, err := waitMaster(ctx, masters, time.Time{}, "", 30*time.Second); err != nil {
			s.Fatalf("no keepalived master: %v", err)
		}
		for trial := range cfg.trials {
			if ctx.Err() != nil {
				return
			}
			// Two backups of equal priority may both take over; the one
			// with the lower address steps back when it hears the other.
			var master string
			var err error
			for range 100 {
				if master, err = currentMaster(nodes); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				s.Fatalf("%v", err)
			}
			var m *keepalivedNode
			for _, k := range nodes {
				if k.name == master {
					m = k
				}
			}
			if m == nil || !m.running() {
				s.Fatalf("master %q is not a running keepalived", master)
			}
			killed := time.Now()
			m.kill()
			// A killed keepalived writes no state change, and a restarted
			// one starting as backup need not either: mark it gone.
			if err := appendLine(masters, fmt.Sprintf("%.9f %s KILLED\n", float64(killed.UnixNano())/1e9, m.name)); err != nil {
				s.Fatalf("%v", err)
			}
			at, who, err := waitMaster(ctx, masters, killed, master, 30*time.Second)
			if err != nil {
				r.failed++
				fmt.Fprintf(out, "  trial %d failed: %v\n", trial+1, err)
			} else {
				r.promote = append(r.promote, at.Sub(killed))
				if cfg.verbose {
					fmt.Fprintf(out, "  trial %d: %s's notify_master after %v\n", trial+1, who, at.Sub(killed).Round(time.Millisecond))
				}
			}
			m.start(s, lab)
			// The restarted node hears the master and settles as backup;
			// two that both took over at once settle to one master.
			time.Sleep(4 * time.Second)
		}
	}) {
		if _, r.skippedReason = s.Skipped(); r.skippedReason == "" && len(r.promote) == 0 {
			r.skippedReason = "the lab did not start"
		}
	}
	return r
}

func (k *keepalivedNode) start(s *session, lab *netlab.Lab) {
	f, err := os.OpenFile(filepath.Join(k.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.Fatalf("%v", err)
	}
	defer f.Close()
	cmd := k.host.Command(context.Background(), "keepalived", k.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if k.proc, err = lab.Start(cmd); err != nil {
		s.Fatalf("start keepalived on %s: %v", k.name, err)
	}
	// Wait until its VRRP process has written its pid file.
	for range 100 {
		if _, err := k.vrrpPID(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Fatalf("keepalived on %s did not start its VRRP process", k.name)
}

func (k *keepalivedNode) running() bool {
	select {
	case <-k.proc.Done():
		return false
	default:
		return true
	}
}

func (k *keepalivedNode) vrrpPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(k.dir, "vrrp.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// kill sends SIGKILL to the VRRP process, then to the parent, and waits.
func (k *keepalivedNode) kill() {
	if pid, err := k.vrrpPID(); err == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = k.proc.Signal(syscall.SIGKILL)
	<-k.proc.Done()
	os.Remove(filepath.Join(k.dir, "vrrp.pid"))
	os.Remove(filepath.Join(k.dir, "keepalived.pid"))
}

// currentMaster returns the one running node whose newest state is
// MASTER, by keepalived's own log. The notify scripts cannot tell: a
// node that takes over and steps back at once (two backups of equal
// priority) starts its MASTER and BACKUP scripts together, and either may
// write first.
func currentMaster(nodes []*keepalivedNode) (string, error) {
	var masters []string
	for _, k := range nodes {
		if !k.running() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(k.dir, "log"))
		if err != nil {
			return "", err
		}
		state := ""
		for l := range strings.Lines(string(b)) {
			if _, rest, ok := strings.Cut(l, "Entering "); ok {
				state, _, _ = strings.Cut(rest, " ")
			}
		}
		if state == "MASTER" {
			masters = append(masters, k.name)
		}
	}
	if len(masters) != 1 {
		return "", fmt.Errorf("want one keepalived master, have %v", masters)
	}
	return masters[0], nil
}

type masterLine struct {
	at    time.Time
	node  string
	state string
}

func readMasters(path string) ([]masterLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []masterLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue
		}
		secs, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		out = append(out, masterLine{at: time.Unix(0, int64(secs*1e9)), node: fs[1], state: fs[2]})
	}
	return out, sc.Err()
}

// waitMaster waits for a notify_master after since from a node other than
// not.
func waitMaster(ctx context.Context, path string, since time.Time, not string, timeout time.Duration) (time.Time, string, error) {
	deadline := time.Now().Add(timeout)
	for {
		lines, _ := readMasters(path)
		for _, l := range lines {
			if l.state == "MASTER" && l.node != not && !l.at.Before(since) {
				return l.at, l.node, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, "", fmt.Errorf("no new master within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}
