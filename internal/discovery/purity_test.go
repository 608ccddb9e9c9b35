package discovery

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"buoy/internal/puritytest"
)

// The package must stay pure: only the standard library and wire, and of
// the standard library nothing that reaches the network, the file system,
// the clock or randomness; no goroutines of its own.
func TestPure(t *testing.T) {
	puritytest.Check(t, puritytest.Rules{
		Pkg:     "buoy/internal/discovery",
		Allowed: []string{"buoy/internal/wire"},
		Denied: []string{
			"net", "net/http", "os", "os/exec", "os/signal", "syscall", "unsafe",
			"io/fs", "path/filepath", "math/rand", "math/rand/v2", "crypto/rand",
		},
		Seen: "net/netip",
	})
}

// TestNeverAsksTheOS fails if any non-test Go file of the module lists the
// machine's interfaces or addresses: a node learns where it is only from
// its peers. It reads the source (skipping comments, so prose may name
// what it forbids) of every package but those that never ship in buoy:
// bench/ and tools/ (modules of their own) and e2e/, whose harness builds
// the test's network namespaces and so must configure addresses.
func TestNeverAsksTheOS(t *testing.T) {
	root := moduleRoot(t)
	skip := map[string]bool{"bench": true, "tools": true, "e2e": true}
	checked := 0
	var findings []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			name := d.Name()
			if path != root && (skip[rel] || name == "testdata" || name == "vendor" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		found, err := asksTheOS(rel, src)
		if err != nil {
			return err
		}
		findings = append(findings, found...)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d files under %s; the walk is broken", checked, root)
	}
	for _, f := range findings {
		t.Errorf("%s: a node may not ask the OS for its addresses; it learns them from peers", f)
	}
}

// moduleRoot returns the directory of the go.mod of module buoy above the
// test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(data)), "module buoy\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of module buoy above the test directory")
		}
		dir = parent
	}
}

// Selectors that list interfaces or their addresses, by package.
var (
	// netListing are functions of package net that enumerate interfaces.
	netListing = []string{"Interfaces", "InterfaceAddrs", "InterfaceByName", "InterfaceByIndex"}
	// anyListing are names that list or reach interface addresses whatever
	// package they come from (net, syscall, x/sys/unix, wrappers).
	anyListing = []string{"InterfaceAddrs", "InterfaceByName", "InterfaceByIndex", "NetlinkRIB",
		"AF_NETLINK", "NETLINK_ROUTE", "RTM_GETADDR", "RTM_GETLINK", "SIOCGIFCONF", "Getifaddrs"}
	// listingMethods are the methods of *net.Interface that return its
	// addresses; no other type in the module may use these names for
	// methods without arguments.
	listingMethods = []string{"Addrs", "MulticastAddrs"}
	// listingStrings are commands and files that list addresses.
	listingStrings = []string{"/proc/net", "/sys/class/net", "ifconfig", "ip addr", "ip address", "ip -br", "getifaddrs"}
)

// asksTheOS returns "file:line: what" for every way file src lists local
// interfaces or addresses.
func asksTheOS(name string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	var found []string
	report := func(pos token.Pos, what string) {
		p := fset.Position(pos)
		found = append(found, fmt.Sprintf("%s:%d: %s", name, p.Line, what))
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if strings.Contains(path, "netlink") || path == "golang.org/x/net/route" {
			report(imp.Pos(), "imports "+path)
		}
	}
	netName := importName(f, "net")
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			x, _ := n.X.(*ast.Ident)
			switch {
			case x != nil && netName != "" && x.Name == netName && slices.Contains(netListing, n.Sel.Name):
				report(n.Pos(), "uses net."+n.Sel.Name)
			case slices.Contains(anyListing, n.Sel.Name):
				report(n.Pos(), "uses ."+n.Sel.Name)
			}
		case *ast.Ident:
			if netName == "." && slices.Contains(netListing, n.Name) {
				report(n.Pos(), "uses net."+n.Name+" (dot import)")
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) == 0 && slices.Contains(listingMethods, sel.Sel.Name) {
				report(n.Pos(), "calls ."+sel.Sel.Name+"() (the addresses of a net.Interface)")
			}
			if lits := stringArgs(n); len(lits) > 1 {
				if i := slices.IndexFunc(lits, func(s string) bool { return s == "ip" || strings.HasSuffix(s, "/ip") }); i >= 0 &&
					slices.ContainsFunc(lits[i+1:], func(s string) bool { return s == "addr" || s == "address" || s == "a" }) {
					report(n.Pos(), "runs ip addr")
				}
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				s, _ := strconv.Unquote(n.Value)
				for _, bad := range listingStrings {
					if strings.Contains(s, bad) {
						report(n.Pos(), fmt.Sprintf("names %q", bad))
					}
				}
			}
		}
		return true
	})
	return found, nil
}

// importName returns the name path is imported as in f ("" if it is not).
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path[strings.LastIndex(path, "/")+1:]
		}
	}
	return ""
}

// stringArgs returns the values of a call's string literal arguments.
func stringArgs(c *ast.CallExpr) []string {
	var out []string
	for _, a := range c.Args {
		if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			out = append(out, s)
		}
	}
	return out
}

// TestAsksTheOSSeesViolations makes sure the check can fail, and does not
// fail on what is allowed.
func TestAsksTheOSSeesViolations(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // line: what, in order
	}{
		{"net.Interfaces", `package p
import "net"
func f() { net.Interfaces() }`, []string{"3: uses net.Interfaces"}},
		{"renamed import", `package p
import stdnet "net"
var g = stdnet.InterfaceAddrs`, []string{"3: uses net.InterfaceAddrs"}},
		{"by name and index", `package p
import "net"
func f() { net.InterfaceByName("eth0"); net.InterfaceByIndex(1) }`, []string{"3: uses net.InterfaceByName", "3: uses net.InterfaceByIndex"}},
		{"dot import", `package p
import . "net"
func f() { Interfaces() }`, []string{"3: uses net.Interfaces (dot import)"}},
		{"interface addrs", `package p
import "net"
func f(i *net.Interface) {
	i.Addrs()
	i.MulticastAddrs()
}`, []string{"4: calls .Addrs()", "5: calls .MulticastAddrs()"}},
		{"netlink package", `package p
import "github.com/vishvananda/netlink"
var _ = netlink.AddrList`, []string{"2: imports github.com/vishvananda/netlink"}},
		{"netlink socket", `package p
import "golang.org/x/sys/unix"
func f() { unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE) }`, []string{"3: uses .AF_NETLINK", "3: uses .NETLINK_ROUTE"}},
		{"proc file", `package p
import "os"
func f() { os.ReadFile("/proc/net/if_inet6") }`, []string{`3: names "/proc/net"`}},
		{"ifconfig", `package p
import "os/exec"
func f() { exec.Command("ifconfig", "-a") }`, []string{`3: names "ifconfig"`}},
		{"ip addr as a shell line", `package p
import "os/exec"
func f() { exec.Command("sh", "-c", "ip addr show") }`, []string{`3: names "ip addr"`}},
		{"ip addr as arguments", `package p
import "os/exec"
func f() { exec.Command("ip", "-4", "addr", "show") }`, []string{"3: runs ip addr"}},
		{"allowed", `package p
// A node never calls net.Interfaces or reads /proc/net: peers tell it.
import (
	"net"
	"net/netip"
)
func f(c net.Conn) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	return ap.Addr(), err
}
func g(r struct{ Addrs []string }) []string { return r.Addrs }`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := asksTheOS("p.go", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range found {
				got = append(got, strings.TrimPrefix(f, "p.go:"))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("asksTheOS(%s) = %q, want %q", tt.name, got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("asksTheOS(%s)[%d] = %q, want %q", tt.name, i, got[i], tt.want[i])
				}
			}
		})
	}
}
