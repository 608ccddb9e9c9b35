// Package puritytest fails a test when a package that must stay pure
// (internal/discovery, internal/failover: time passed in, effects returned
// to the caller) starts to depend on what it must not: a package outside
// its allow list, a denied standard package, the clock, or goroutines of
// its own.
//
// Imports are read with `go list`, so the go command must be on PATH; the
// package's own source is parsed for what imports cannot show.
package puritytest

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

// Rules say what one pure package may use.
type Rules struct {
	// Pkg is the import path of the package checked.
	Pkg string
	// Allowed are the only non-standard packages, besides Pkg, that Pkg
	// may depend on, directly or not.
	Allowed []string
	// Denied are standard packages Pkg itself may not import.
	Denied []string
	// Seen is a standard package Pkg is known to import. Check fails if
	// go list does not report it, so that a broken listing cannot pass
	// the deny check by listing nothing.
	Seen string
}

// clockFuncs are the functions of package time that read or wait on the
// clock; a pure package takes now as an argument instead.
var clockFuncs = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}

// Check fails t for every dependency r does not allow, every denied
// standard import, and every go statement or use of the clock in the
// package's non-test source files.
func Check(t testing.TB, r Rules) {
	t.Helper()
	deps := strings.Fields(goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", r.Pkg))
	if !slices.Contains(deps, r.Pkg) {
		t.Fatalf("go list -deps %s = %v, does not list the package itself", r.Pkg, deps)
	}
	for _, d := range deps {
		if d != r.Pkg && !slices.Contains(r.Allowed, d) {
			t.Errorf("%s depends on %s; it may use only the standard library and %v", r.Pkg, d, r.Allowed)
		}
	}
	imports := strings.Fields(goList(t, "-f", `{{join .Imports " "}}`, r.Pkg))
	if !slices.Contains(imports, r.Seen) {
		t.Fatalf("go list -f .Imports %s = %v, want it to see %s", r.Pkg, imports, r.Seen)
	}
	for _, imp := range imports {
		if slices.Contains(r.Denied, imp) {
			t.Errorf("%s imports %q: the package is pure and may not import any of %v", r.Pkg, imp, r.Denied)
		}
	}

	// The source check reads the package's directory as go list sees
	// it, not the test's working directory, and counts go list's file
	// list so that a wrong directory cannot pass by finding nothing.
	dir, files, _ := strings.Cut(goList(t, "-f", "{{.Dir}}\n{{join .GoFiles \" \"}}", r.Pkg), "\n")
	goFiles := strings.Fields(files)
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		checked++
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		found, err := impureCalls(filepath.Base(name), src)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Error(f)
		}
	}
	if checked == 0 || checked < len(goFiles) {
		t.Fatalf("checked %d source files in %s, want the package's %d", checked, dir, len(goFiles))
	}
}

// goList runs `go list args...` and returns its output.
func goList(t testing.TB, args ...string) string {
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
	return string(out)
}

// impureCalls reports the go statements and uses of the clock in one
// file: what the import check cannot see.
func impureCalls(name string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
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
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			found = append(found, fmt.Sprintf("%s: starts a goroutine; the package has none of its own", fset.Position(n.Pos())))
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && timeName != "" && x.Name == timeName && slices.Contains(clockFuncs, n.Sel.Name) {
				found = append(found, fmt.Sprintf("%s: uses time.%s; take now as an argument", fset.Position(n.Pos()), n.Sel.Name))
			}
		}
		return true
	})
	return found, nil
}
