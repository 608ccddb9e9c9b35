package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// tsigKey is the key the Buoy node accepts UPDATEs with in the change test.
const (
	tsigName   = "bench-key."
	tsigSecret = "YnVveS1kbnMtYmVuY2gtc2VjcmV0LWtleS0zMmJ5dGVz" // base64, 32 bytes
)

// launch is how to start one server: its command line and, for Buoy, the
// HTTP API address the zone CLI talks to.
type launch struct {
	argv     []string
	env      []string
	httpAddr string
}

// server is one of the DNS servers compared. setup writes whatever config
// the server needs into dir (a fresh temporary folder) and says how to run
// it so that it serves zoneFile for origin on 127.0.0.1:port.
type server struct {
	name  string
	setup func(b binaries, dir string, port int, origin, zoneFile string) (launch, error)
}

// binaries are the programs the benchmark runs.
type binaries struct {
	buoy, coredns string
}

func servers() []server {
	return []server{
		{"buoy", setupBuoy},
		{"nsd", setupNSD},
		{"knot", setupKnot},
		{"coredns", setupCoreDNS},
	}
}

// setupBuoy runs a single node that bootstraps a cluster of one in a fresh
// data dir, with no key-value line protocol, HTTP on loopback, and a TSIG
// key for the change test's UPDATEs.
func setupBuoy(b binaries, dir string, port int, _, zoneFile string) (launch, error) {
	peer, err := freePort()
	if err != nil {
		return launch{}, err
	}
	http, err := freePort()
	if err != nil {
		return launch{}, err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(http)
	return launch{
		argv: []string{b.buoy, "agent",
			"--name", "bench", "--data-dir", filepath.Join(dir, "data"), "--bootstrap",
			"--peer-addr", "127.0.0.1:" + strconv.Itoa(peer),
			"--http-addr", httpAddr,
			"--kv-text-addr", "-",
			"--dns-addr", "127.0.0.1:" + strconv.Itoa(port),
			"--zone-file", zoneFile,
			"--tsig-key", tsigName + ":hmac-sha256:" + tsigSecret,
			"--log-level", "warn",
		},
		httpAddr: httpAddr,
	}, nil
}

// setupNSD writes an nsd.conf with response-rate-limiting off (Debian's
// NSD has it on by default), one server process (the server gets one
// core), no database file, and everything under dir; nsd -d stays in the
// foreground.
func setupNSD(_ binaries, dir string, port int, origin, zoneFile string) (launch, error) {
	conf := fmt.Sprintf(`server:
	ip-address: 127.0.0.1@%d
	do-ip6: no
	server-count: 1
	reuseport: no
	username: ""
	chroot: ""
	zonesdir: %q
	database: ""
	zonelistfile: %q
	xfrdfile: %q
	xfrdir: %q
	pidfile: %q
	logfile: %q
	verbosity: 0
	hide-version: yes
	rrl-ratelimit: 0
	rrl-whitelist-ratelimit: 0
	rrl-slip: 0
remote-control:
	control-enable: no
zone:
	name: %q
	zonefile: %q
`, port, dir, filepath.Join(dir, "zone.list"), filepath.Join(dir, "xfrd.state"), dir,
		filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "nsd.log"), origin, zoneFile)
	path := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return launch{}, err
	}
	return launch{argv: []string{"nsd", "-d", "-c", path}}, nil
}

// setupKnot writes a knot.conf with one UDP and one TCP worker (the server
// gets one core), the zone loaded whole from the file, no journal and no
// writing back to the file. Knot has no rate limiting unless the rrl
// module is configured.
func setupKnot(_ binaries, dir string, port int, origin, zoneFile string) (launch, error) {
	conf := fmt.Sprintf(`server:
    rundir: %q
    listen: 127.0.0.1@%d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: %q
log:
  - target: stderr
    any: warning
zone:
  - domain: %s
    file: %q
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
`, dir, port, filepath.Join(dir, "db"), origin, zoneFile)
	path := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return launch{}, err
	}
	return launch{argv: []string{"knotd", "-c", path}}, nil
}

// setupCoreDNS writes a Corefile with the file plugin alone: no cache, no
// log, no errors plugin.
func setupCoreDNS(b binaries, dir string, port int, origin, zoneFile string) (launch, error) {
	conf := fmt.Sprintf("%s:%d {\n\tbind 127.0.0.1\n\tfile %s %s\n}\n", origin, port, zoneFile, origin)
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return launch{}, err
	}
	return launch{argv: []string{b.coredns, "-conf", path, "-quiet"}}, nil
}

// freePort returns a loopback port that is free for both UDP and TCP now.
func freePort() (int, error) {
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		u.Close()
		if err != nil {
			continue
		}
		t.Close()
		return port, nil
	}
	return 0, errors.New("find a free loopback port: none free for both UDP and TCP after 20 tries")
}

// ask sends one question over UDP and returns the answer.
func ask(ctx context.Context, addr string, q query) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(q.name, dns.StringToType[q.qtype])
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	return r, err
}

// waitServing waits until the server at addr answers authoritatively for
// the zone's SOA and for probe (a name near the end of the file, so that a
// server loading in the background has loaded it all).
func waitServing(ctx context.Context, p *proc, addr, origin string, probe query, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := p.exited(); err != nil {
			return err
		}
		last = checkServing(ctx, addr, origin, probe)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s not serving %s after %v: %w (log %s)", p.name, addr, origin, timeout, last, p.log.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func checkServing(ctx context.Context, addr, origin string, probe query) error {
	r, err := ask(ctx, addr, query{origin, "SOA"})
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0 {
		return fmt.Errorf("SOA: rcode %s, aa %v, %d answers", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
	}
	r, err = ask(ctx, addr, probe)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return fmt.Errorf("%s %s: rcode %s, %d answers", probe.name, probe.qtype, dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}

// answerA returns the addresses in the A answer for name, sorted as sent.
func answerA(ctx context.Context, addr, name string) (string, error) {
	r, err := ask(ctx, addr, query{name, "A"})
	if err != nil {
		return "", err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return strings.Join(out, ","), nil
}
