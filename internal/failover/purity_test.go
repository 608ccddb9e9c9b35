package failover

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The package must stay pure: only the standard library (and wire, were
// it ever needed), and of the standard library nothing that reaches the
// network, the file system, the clock or randomness. These tests keep it so.

const thisPkg = "buoy/internal/failover"

// allowedModulePkgs are the only non-standard packages the package may
// depend on, directly or not.
var allowedModulePkgs = []string{thisPkg, "buoy/internal/wire"}

// deniedStdlib are standard packages the package itself may not import.
var deniedStdlib = []string{
	"net", "net/http", "os", "os/exec", "os/signal", "syscall", "unsafe", "io/fs", "path/filepath",
	"math/rand", "math/rand/v2", "crypto/rand", "sync", "sync/atomic", "runtime", "log", "log/slog",
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check imports: %v", err)
	}
	out, err := exec.Command(gobin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

func TestImportsOnlyStdlib(t *testing.T) {
	deps := goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", thisPkg)
	if !slices.Contains(deps, thisPkg) {
		t.Fatalf("go list -deps %s = %v, does not list the package itself", thisPkg, deps)
	}
	for _, d := range deps {
		if !slices.Contains(allowedModulePkgs, d) {
			t.Errorf("%s depends on %s; it may use only the standard library and %v", thisPkg, d, allowedModulePkgs[1:])
		}
	}
	imports := goList(t, "-f", `{{join .Imports " "}}`, thisPkg)
	if !slices.Contains(imports, "time") {
		t.Fatalf("go list -f .Imports %s = %v, want it to see time", thisPkg, imports)
	}
	for _, imp := range imports {
		if slices.Contains(deniedStdlib, imp) {
			t.Errorf("%s imports %q: the package is pure (no sockets, files, clock, randomness or locks)", thisPkg, imp)
		}
	}
}

// TestNoClockNoGoroutines checks the package's own source for what the
// import check cannot see: reading or waiting on the clock, and starting
// goroutines.
func TestNoClockNoGoroutines(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		checked++
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range impureCalls(t, name, src) {
			t.Error(f)
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d source files, want the package's", checked)
	}
}

// impureCalls reports go statements and uses of the clock in one file.
func impureCalls(t *testing.T, name string, src []byte) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	timeName := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	clock := []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			found = append(found, fmt.Sprintf("%s: starts a goroutine; the package has none of its own", fset.Position(n.Pos())))
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && timeName != "" && x.Name == timeName && slices.Contains(clock, n.Sel.Name) {
				found = append(found, fmt.Sprintf("%s: uses time.%s; take now as an argument", fset.Position(n.Pos()), n.Sel.Name))
			}
		}
		return true
	})
	return found
}

func TestImpureCallsSeesViolations(t *testing.T) {
	src := `package p
import clock "time"
func f() { go f(); _ = clock.Now(); _ = clock.Since(clock.Time{}) }
func g(now clock.Time) clock.Duration { return now.Sub(now) }`
	if got := impureCalls(t, "p.go", []byte(src)); len(got) != 3 {
		t.Errorf("impureCalls = %q, want 3 findings (go, Now, Since)", got)
	}
}
