package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real DNS clients and servers the DNS tests drive, each with the Debian
// package that installs it (.ci/run installs them all).
var dnsTools = map[string]string{
	"dig":      "dnsutils",
	"nsupdate": "dnsutils",
	"kdig":     "knot-dnsutils",
	"knotd":    "knot",
	"openssl":  "openssl",
}

// dnsToolTimeout bounds one run of dig, kdig or nsupdate.
const dnsToolTimeout = 20 * time.Second

// tool returns the path of one of dnsTools. knotd lives in /usr/sbin, which
// is not on every user's PATH, so the sbin folders are searched too. A
// missing tool skips the calling test, saying what to install; under CI=true
// it fails it instead, since there .ci/run has installed every tool.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed (Debian package %s; .ci/run installs it)", name, dnsTools[name])
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipping this part")
	return ""
}

// freeDNSAddr returns a loopback address whose port nobody used a moment
// ago, over UDP and TCP both, as a DNS server needs.
func freeDNSAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free UDP port: %v", err)
		}
		addr := u.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		u.Close()
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("find a port free over UDP and TCP: none after 20 tries")
	return ""
}

// dnsAgent is an agent with a DNS address fixed by the test, so that the
// clients know where to ask.
type dnsAgent struct {
	*node
	dnsAddr string // 127.0.0.1:port, UDP and TCP
}

// startDNS starts an agent serving DNS on a port picked here; extra
// follows on the command line (after the harness's "--dns-addr
// 127.0.0.1:0", which the later flag overrides). Like cluster.start, it
// retries once with new ports if one was taken meanwhile.
func (c *cluster) startDNS(name string, extra ...string) *dnsAgent {
	c.t.Helper()
	a := &dnsAgent{dnsAddr: freeDNSAddr(c.t)}
	a.node = c.node(name, slices.Concat([]string{"--dns-addr", a.dnsAddr}, extra)...)
	a.launch()
	if err := a.waitAPI(); err != nil && a.portTaken() {
		a.repickPorts()
		a.dnsAddr = freeDNSAddr(c.t)
		a.extra[1] = a.dnsAddr
		a.launch()
	}
	if err := a.waitAPI(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	return a
}

// zone runs "buoy zone SUB args..." against the agent's API. (node.cli
// puts --http-addr after the first word only, right for every command but
// token and zone.)
func (a *dnsAgent) zone(sub string, args ...string) (stdout, stderr string, err error) {
	return runCLI(slices.Concat([]string{"zone", sub, "--http-addr", a.httpAddr}, args)...)
}

// hostPort splits a DNS address into the server and port arguments of
// dig, kdig and nsupdate.
func hostPort(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("DNS address %q: %v", addr, err)
	}
	return host, port
}

// runTool runs a DNS tool with stdin and returns its combined output.
func runTool(path string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dnsToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// reply is one DNS answer as dig prints it: the rcode, the header flags
// and the three sections, each record as its fields joined by one space.
type reply struct {
	status     string
	flags      []string
	answer     []string
	authority  []string
	additional []string
	out        string // dig's whole output, for failure messages
}

// key is the reply in a comparable form, records sorted within sections:
// two servers giving the same answer give the same key.
func (r reply) key() string {
	sec := func(s []string) string {
		s = slices.Clone(s)
		slices.Sort(s)
		return strings.Join(s, " | ")
	}
	return fmt.Sprintf("%s flags=%v answer=[%s] authority=[%s] additional=[%s]",
		r.status, r.flags, sec(r.answer), sec(r.authority), sec(r.additional))
}

// dig asks server addr for name and qtype, with +norec and any more
// options, and parses the answer.
func dig(t *testing.T, addr, name, qtype string, opts ...string) (reply, error) {
	t.Helper()
	host, port := hostPort(t, addr)
	args := slices.Concat([]string{"@" + host, "-p", port, name, qtype,
		"+norec", "+time=2", "+tries=3", "+noall", "+comments", "+answer", "+authority", "+additional"}, opts)
	out, err := runTool(tool(t, "dig"), "", args...)
	if err != nil {
		return reply{}, err
	}
	r := parseDig(out)
	if r.status == "" {
		return r, fmt.Errorf("dig %s: no answer in:\n%s", strings.Join(args, " "), out)
	}
	return r, nil
}

// parseDig reads dig's output in the +noall +comments +answer +authority
// +additional form.
func parseDig(out string) reply {
	r := reply{out: out}
	var sec *[]string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if _, st, ok := strings.Cut(line, "status: "); ok {
				r.status, _, _ = strings.Cut(st, ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			fl, _, _ := strings.Cut(strings.TrimPrefix(line, ";; flags:"), ";")
			r.flags = strings.Fields(fl)
		case line == ";; ANSWER SECTION:":
			sec = &r.answer
		case line == ";; AUTHORITY SECTION:":
			sec = &r.authority
		case line == ";; ADDITIONAL SECTION:":
			sec = &r.additional
		case line == "" || strings.HasPrefix(line, ";"):
		case sec != nil:
			*sec = append(*sec, strings.Join(strings.Fields(line), " "))
		}
	}
	return r
}

// soaSerial returns the serial of zone's SOA as server addr answers it.
func soaSerial(t *testing.T, addr, zone string) (uint32, error) {
	t.Helper()
	r, err := dig(t, addr, zone, "SOA")
	if err != nil {
		return 0, err
	}
	for _, rr := range r.answer {
		f := strings.Fields(rr)
		if len(f) == 11 && f[3] == "SOA" {
			s, err := strconv.ParseUint(f[6], 10, 32)
			if err != nil {
				return 0, fmt.Errorf("SOA %q: serial: %w", rr, err)
			}
			return uint32(s), nil
		}
	}
	return 0, fmt.Errorf("%s SOA at %s: no SOA in the answer:\n%s", zone, addr, r.out)
}

// serialAfter reports a > b in RFC 1982 serial number arithmetic.
func serialAfter(a, b uint32) bool { return int32(a-b) > 0 }

// records returns the resource records in kdig's or dig's output (the
// lines that are not comments), each as its fields joined by one space,
// without TSIG records.
func records(out string) []string {
	var rrs []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 4 && f[3] == "TSIG" {
			continue
		}
		rrs = append(rrs, strings.Join(f, " "))
	}
	return rrs
}

// knot is a Knot DNS secondary (knotd) in a process of its own, with its
// configuration, database and log in a temporary folder. The test's
// cleanup stops it by its PID.
type knot struct {
	addr    string // 127.0.0.1:port it answers on
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and been reaped
}

// knotConfig is knotd's configuration: one secondary zone pulled from
// primary with TSIG key, NOTIFY accepted from loopback signed with the
// same key. No zone file is written and no journal kept: the zone lives
// in memory, so only a transfer can give it a new serial.
const knotConfig = `server:
    rundir: "{dir}"
    pidfile: "{dir}/knot.pid"
    listen: {listen}
log:
  - target: stderr
    any: info
database:
    storage: "{dir}/db"
control:
    listen: "{dir}/knot.sock"
key:
  - id: {keyname}
    algorithm: hmac-sha256
    secret: {secret}
remote:
  - id: buoy
    address: {primary}
    key: {keyname}
acl:
  - id: notify-from-buoy
    address: 127.0.0.1
    key: {keyname}
    action: notify
template:
  - id: default
    storage: "{dir}/zones"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: {zone}
    master: buoy
    acl: notify-from-buoy
`

// startKnot starts knotd on addr as a secondary for zone, pulling from
// primary (a buoy DNS address) with the hmac-sha256 key keyName/secret.
func startKnot(t *testing.T, addr, primary, zone, keyName, secret string) *knot {
	t.Helper()
	bin := tool(t, "knotd")
	dir := t.TempDir()
	at := func(a string) string { // knot writes host@port
		h, p := hostPort(t, a)
		return h + "@" + p
	}
	conf := strings.NewReplacer("{dir}", dir, "{listen}", at(addr), "{primary}", at(primary),
		"{zone}", zone, "{keyname}", keyName, "{secret}", secret).Replace(knotConfig)
	confPath := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &knot{addr: addr, logPath: filepath.Join(dir, "knotd.log"), done: make(chan struct{})}
	f, err := os.Create(k.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child holds its own copy
	k.cmd = exec.Command(bin, "-c", confPath)
	k.cmd.Stdout, k.cmd.Stderr = f, f
	k.cmd.SysProcAttr = agentProcAttr() // killed with the test binary too
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start knotd: %v", err)
	}
	// This goroutine owns Wait: it exits when knotd does, which the
	// cleanup below guarantees.
	go func() {
		_ = k.cmd.Wait()
		close(k.done)
	}()
	t.Cleanup(func() { k.stop(t) })
	return k
}

// stop sends knotd SIGTERM, by its PID, and waits for it to exit; if it
// does not within 15 s it is killed. If the test failed, its log is
// printed.
func (k *knot) stop(t *testing.T) {
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(15 * time.Second):
		t.Errorf("knotd (pid %d) did not exit within 15 s of SIGTERM; killing it", k.cmd.Process.Pid)
		_ = k.cmd.Process.Kill()
		<-k.done
	}
	if t.Failed() {
		t.Logf("--- last lines of knotd's log (%s) ---\n%s", k.logPath, tail(k.logPath, 40))
	}
}

// running reports whether knotd has not exited.
func (k *knot) running() bool {
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// log returns what knotd has logged so far.
func (k *knot) log() string {
	data, err := os.ReadFile(k.logPath)
	if err != nil {
		return err.Error()
	}
	return string(data)
}
