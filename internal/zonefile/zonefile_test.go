package zonefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// files writes name -> content under dir (creating folders) and returns dir.
func files(t testing.TB, dir string, fs map[string]string) string {
	t.Helper()
	for name, content := range fs {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// inDir runs the test from dir, so that Load gets relative paths as an
// operator would type them.
func inDir(t *testing.T, dir string) {
	t.Helper()
	t.Chdir(dir)
}

const soaLines = `$ORIGIN example.org.
$TTL 300
@ IN SOA ns1 hostmaster (
        2026110101 ; serial
        7200       ; refresh (with a ; in the comment)
        3600 1209600
        300 )
  IN NS ns1
`

func strs(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

func TestLoad(t *testing.T) {
	dir := files(t, t.TempDir(), map[string]string{
		"example.zone": soaLines + `
www      IN A     192.0.2.10   ; a comment
         IN AAAA  2001:db8::10
txt  60  IN TXT   "semi;colon" "quote\"d" ( "in parens"
                  "on two lines" )
Mail.Example.ORG. IN MX 10 mail
`,
	})
	inDir(t, dir)
	rrs, err := Load("example.zone", "example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"example.org.\t300\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026110101 7200 3600 1209600 300",
		"example.org.\t300\tIN\tNS\tns1.example.org.",
		"www.example.org.\t300\tIN\tA\t192.0.2.10",
		"www.example.org.\t300\tIN\tAAAA\t2001:db8::10",
		"txt.example.org.\t60\tIN\tTXT\t\"semi;colon\" \"quote\\\"d\" \"in parens\" \"on two lines\"",
		"Mail.Example.ORG.\t300\tIN\tMX\t10 mail.example.org.",
	}
	if got := strs(rrs); !slices.Equal(got, want) {
		t.Errorf("Load = %q\nwant %q", got, want)
	}

	t.Run("origin from the SOA", func(t *testing.T) {
		rrs, err := Load(filepath.Join(dir, "example.zone"), "", 0)
		if err != nil || len(rrs) != len(want) || rrs[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("Load without origin = %d records, %v", len(rrs), err)
		}
	})
	t.Run("SOA comes first", func(t *testing.T) {
		files(t, dir, map[string]string{"late.zone": "a.example.org. 5 IN A 192.0.2.1\n" + soaLines})
		rrs, err := Load("late.zone", "example.org.", 0)
		if err != nil || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[1].Header().Name != "a.example.org." {
			t.Errorf("Load = %q, %v; want the SOA first, then the file's order", strs(rrs), err)
		}
	})
	t.Run("default TTL", func(t *testing.T) {
		files(t, dir, map[string]string{"nottl.zone": "@ IN SOA ns1.example.org. h.example.org. 1 2 3 4 5\n"})
		rrs, err := Load("nottl.zone", "example.org.", 42)
		if err != nil || rrs[0].Header().Ttl != 42 {
			t.Errorf("Load with default TTL 42 = %q, %v", strs(rrs), err)
		}
		if rrs, err := Load("nottl.zone", "example.org.", 0); err != nil || rrs[0].Header().Ttl != DefaultTTL {
			t.Errorf("Load without any TTL = %q, %v; want TTL %d", strs(rrs), err, DefaultTTL)
		}
	})
}

func TestLoadInclude(t *testing.T) {
	base := t.TempDir()
	outside := files(t, filepath.Join(base, "outside"), map[string]string{"evil.zone": "evil.example.org. 300 IN A 192.0.2.66\n"})
	zones := filepath.Join(base, "zones")
	files(t, zones, map[string]string{
		"hosts/web.zone":     "web 300 IN A 192.0.2.1\n$INCLUDE more/db.zone\n",
		"hosts/more/db.zone": "db 300 IN A 192.0.2.2\n",
		"other.zone":         "other 300 IN A 192.0.2.3\n",
		"bad/broken.zone":    "; fine\nok 300 IN A 192.0.2.4\nbroken 300 IN A 192.0.2.999\n",
		"svc.zone":           "$ORIGIN svc.example.org.\napi 300 IN A 192.0.2.5\n",
	})
	if err := os.Symlink(filepath.Join(outside, "evil.zone"), filepath.Join(zones, "link-out.zone")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(zones, "other.zone"), filepath.Join(zones, "link-in.zone")); err != nil {
		t.Fatal(err)
	}
	inDir(t, base)
	tests := []struct {
		name    string
		include string
		want    []string // owner names after the SOA and NS
		wantErr string   // exact error
		wantIs  error
	}{
		{name: "relative, nested relative to the including file", include: "$INCLUDE hosts/web.zone",
			want: []string{"web.example.org.", "db.example.org."}},
		{name: "absolute inside the folder", include: "$INCLUDE " + filepath.Join(zones, "other.zone"),
			want: []string{"other.example.org."}},
		{name: "with an origin", include: "$INCLUDE other.zone sub.example.org.",
			want: []string{"other.sub.example.org."}},
		{name: "its $ORIGIN ends with it", include: "$INCLUDE svc.zone\nafter 300 IN A 192.0.2.9",
			want: []string{"api.svc.example.org.", "after.example.org."}},
		{name: "a symlink staying inside", include: "$INCLUDE link-in.zone",
			want: []string{"other.example.org."}},
		{name: "dot-dot escape", include: "$INCLUDE ../outside/evil.zone",
			wantErr: `zones/main.zone:10: $INCLUDE ../outside/evil.zone: outside the zone file's folder zones`, wantIs: ErrIncludeOutside},
		{name: "dot-dot through a subfolder", include: "$INCLUDE hosts/../../outside/evil.zone",
			wantErr: `zones/main.zone:10: $INCLUDE hosts/../../outside/evil.zone: outside the zone file's folder zones`, wantIs: ErrIncludeOutside},
		{name: "absolute outside", include: "$INCLUDE " + filepath.Join(outside, "evil.zone"),
			wantErr: `zones/main.zone:10: $INCLUDE ` + filepath.Join(outside, "evil.zone") + `: outside the zone file's folder zones`, wantIs: ErrIncludeOutside},
		{name: "a symlink leading out", include: "$INCLUDE link-out.zone",
			wantErr: fmt.Sprintf(`zones/main.zone:10: $INCLUDE link-out.zone: outside the zone file's folder zones (it is a link to %s)`, mustEval(t, filepath.Join(outside, "evil.zone"))), wantIs: ErrIncludeOutside},
		{name: "missing file", include: "$INCLUDE nope.zone",
			wantErr: `zones/main.zone:10: $INCLUDE nope.zone: no such file`},
		{name: "an error in an included file names it", include: "$INCLUDE bad/broken.zone",
			wantErr: `zones/bad/broken.zone:3: bad A A: "192.0.2.999"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files(t, zones, map[string]string{"main.zone": soaLines + "\n" + tt.include + "\n"})
			rrs, err := Load("zones/main.zone", "example.org.", 0)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Load = %v\nwant %s", err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
				}
				var e *Error
				if !errors.As(err, &e) || e.Line == 0 {
					t.Errorf("error %v is not an *Error with a line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rr := range rrs[2:] {
				got = append(got, rr.Header().Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("names = %q, want %q", got, tt.want)
			}
		})
	}
}

func mustEval(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoadErrors(t *testing.T) {
	// Each file starts with the 8 lines of soaLines unless it says
	// otherwise; the error must name the exact line.
	tests := []struct {
		name    string
		text    string
		origin  string
		wantErr string
	}{
		{"syntax error after a multi-line SOA", soaLines + "\nwww IN A 192.0.2.300\n", "example.org.",
			`z.zone:10: bad A A: "192.0.2.300"`},
		{"unknown type", soaLines + "www IN BOGUS 1\n", "example.org.",
			`z.zone:9: not a TTL: "BOGUS"`},
		{"no SOA", "$ORIGIN example.org.\nwww 300 IN A 192.0.2.1\n", "example.org.",
			`z.zone: no SOA record for example.org.`},
		{"no SOA and no origin", "www.example.org. 300 IN A 192.0.2.1\n", "",
			`z.zone: no SOA record`},
		{"SOA not at the apex", "$TTL 1\nsub.example.org. IN SOA ns h 1 2 3 4 5\n", "example.org.",
			`z.zone:2: SOA record for sub.example.org. is not at the zone apex example.org.`},
		{"second SOA", soaLines + "; two\n\n@ IN SOA ns2 h 5 2 3 4 5\n", "example.org.",
			`z.zone:11: second SOA record (the first is at z.zone:3)`},
		{"outside the origin", soaLines + "www.example.net. IN A 192.0.2.1\n", "example.org.",
			`z.zone:9: www.example.net. is outside the zone example.org.`},
		{"$ORIGIN elsewhere", soaLines + "$ORIGIN example.com.\nwww IN A 192.0.2.1\n", "example.org.",
			`z.zone:10: www.example.com. is outside the zone example.org.`},
		{"CNAME beside other data", soaLines + "a IN A 192.0.2.1\n\na IN CNAME b\n", "example.org.",
			`z.zone:11: CNAME at a.example.org. beside other data (A at z.zone:9)`},
		{"other data beside a CNAME", soaLines + "a IN CNAME b\na IN TXT \"x\"\n", "example.org.",
			`z.zone:10: TXT at a.example.org. beside its CNAME (at z.zone:9)`},
		{"second CNAME", soaLines + "a IN CNAME b\na IN CNAME c\n", "example.org.",
			`z.zone:10: second CNAME for a.example.org. (the first is at z.zone:9)`},
		{"CNAME at the apex", soaLines + "@ IN CNAME b\n", "example.org.",
			`z.zone:9: CNAME at example.org. beside other data (SOA at z.zone:3)`},
		{"class CH", soaLines + "a CH TXT \"x\"\n", "example.org.",
			`z.zone:9: class CH: a zone holds class IN only`},
		{"include not allowed above", soaLines + "$INCLUDE /etc/hostname\n", "example.org.",
			`z.zone:9: $INCLUDE /etc/hostname: outside the zone file's folder ` + "DIR"},
		{"unbalanced parenthesis", soaLines + "a IN TXT ( \"x\"\n", "example.org.",
			`z.zone:9: bad TXT Txt: "unbalanced brace"`},
		{"line numbers after quoted newlines", soaLines + "a IN TXT \"one\ntwo\"\nb IN A 1\n", "example.org.",
			`z.zone:11: bad A A: "1"`},
		{"line numbers after $GENERATE", soaLines + "$GENERATE 1-3 h$ A 192.0.2.$\n\nexample.net. IN A 192.0.2.1\n", "example.org.",
			`z.zone:11: example.net. is outside the zone example.org.`},
		{"error inside $GENERATE", soaLines + "\n$GENERATE 1-300 h$ A 192.0.2.$\n", "example.org.",
			"z.zone:10: bad A A: \"192.0.2.256\""},
		{"unfinished last record", soaLines + "www 300", "example.org.",
			`z.zone:9: incomplete record at the end of the file`},
		{"record without data", soaLines + "www 300 IN A\n", "example.org.",
			`z.zone:9: A record without data`},
		{"bad origin", soaLines, "exa mple..org", `z.zone: zone origin "exa mple..org" is not a domain name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := files(t, t.TempDir(), map[string]string{"z.zone": tt.text})
			inDir(t, dir)
			_, err := Load("z.zone", tt.origin, 0)
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			if err == nil || err.Error() != want {
				t.Errorf("Load = %v\nwant %s", err, want)
			}
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Errorf("error %T is not an *Error", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		inDir(t, t.TempDir())
		if _, err := Load("nope.zone", "example.org.", 0); err == nil || err.Error() != "nope.zone: no such file or directory" {
			t.Errorf("Load(missing) = %v", err)
		}
	})
}

// TestPlacesMatchLines checks the scanner against the parser on tricky
// text: every record must be attributed to the line it starts on.
func TestPlacesMatchLines(t *testing.T) {
	text := `$ORIGIN example.org.
$TTL 60
@ IN SOA ns h ( 1 2
  3 4 5 ) ; the SOA begins on line 3
l5 IN TXT "a ; not a comment" ; but this is
l6 IN TXT "quote \" inside ( not a paren"
   ; a comment line

l9 IN TXT ( "multi"   ; comment in parens (with a paren
            "line" )
l11 IN TXT "new
line in quotes"
l13 IN A 192.0.2.1
l14 IN TXT a\;b \"c
$INCLUDE inc.zone
l16 IN A 192.0.2.2
$generate 1-2 l17-$ A 192.0.2.$
l18 IN A 192.0.2.3
    IN AAAA 2001:db8::1` // no final newline; the last line continues l18
	dir := files(t, t.TempDir(), map[string]string{"inc.zone": "inc1 IN A 192.0.2.1\n\n  \ninc4 IN A 192.0.2.2\n"})
	rrs, where, err := parseText(t, dir, text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"example.org. z.zone:3", "l5 z.zone:5", "l6 z.zone:6", "l9 z.zone:9", "l11 z.zone:11",
		"l13 z.zone:13", "l14 z.zone:14", "inc1 inc.zone:1", "inc4 inc.zone:4", "l16 z.zone:16",
		"l17-1 z.zone:17", "l17-2 z.zone:17", "l18 z.zone:18", "l18 z.zone:19",
	}
	var got []string
	for i, rr := range rrs {
		label := strings.TrimSuffix(strings.TrimSuffix(rr.Header().Name, "example.org."), ".")
		if label == "" {
			label = "example.org."
		}
		got = append(got, fmt.Sprintf("%s %s:%d", label, filepath.Base(where[i].file), where[i].line))
	}
	if !slices.Equal(got, want) {
		t.Errorf("places = %q\nwant %q", got, want)
	}
}

// parseText runs the loader on text as the file z.zone in dir.
func parseText(t testing.TB, dir, text string) ([]dns.RR, []place, error) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	l := &loader{userPath: "z.zone", absTop: filepath.Join(dir, "z.zone"), rootDir: dir, root: root, budget: MaxBytes, maxRRs: MaxRecords}
	rrs, where, err := l.parse([]byte(text), "example.org.", 3600)
	if err == nil {
		// The scan found exactly the parser's records.
		if f, line := l.track.next(); f != "" {
			t.Errorf("the scan has a record the parser did not return, at %s:%d", f, line)
		}
		for i, p := range where {
			if p.file == "" {
				t.Errorf("record %d (%s) has no place", i, rrs[i])
				break
			}
		}
	}
	return rrs, where, err
}

func TestLimits(t *testing.T) {
	// The loader's limits lowered, so the test reads kilobytes, not the
	// real limits' megabytes.
	dir := files(t, t.TempDir(), map[string]string{
		"many.zone": "$GENERATE 0-9 m$ A 192.0.2.1\n",
		"big.zone":  strings.Repeat("; padding\n", 100),
	})
	tests := []struct {
		name    string
		text    string
		budget  int64
		maxRRs  int
		wantErr string
	}{
		{"records", soaLines + "$INCLUDE many.zone\n$INCLUDE many.zone\n", MaxBytes, 15,
			"many.zone:1: more than 15 records"},
		{"bytes", soaLines + "$INCLUDE big.zone\n$INCLUDE big.zone\n", int64(len(soaLines)) + 1500, MaxRecords,
			"z.zone:10: $INCLUDE big.zone: zone files larger than 64 MiB in all"},
		{"within both", soaLines + "$INCLUDE many.zone\n$INCLUDE big.zone\n", int64(len(soaLines)) + 1500, 12, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			l := &loader{userPath: "z.zone", absTop: filepath.Join(dir, "z.zone"), rootDir: dir, root: root,
				budget: tt.budget - int64(len(tt.text)), maxRRs: tt.maxRRs}
			_, _, err = l.parse([]byte(tt.text), "example.org.", 0)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("parse = %v, want success", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parse = %v, want %s", err, tt.wantErr)
			}
		})
	}
}

func FuzzZoneFile(f *testing.F) {
	f.Add(soaLines + "www IN A 192.0.2.1\n")
	f.Add(soaLines + "$INCLUDE inc.zone\n")
	f.Add(soaLines + "$INCLUDE inc.zone sub\n$INCLUDE ../x\n")
	f.Add(soaLines + "$GENERATE 1-5/2 h$ A 192.0.2.$\n")
	f.Add(soaLines + "a IN TXT \"x\\\"y\" ( \"z\"\n ) ; c\n")
	f.Add("@ 1 IN SOA a b 1 2 3 4 5\n@ 1 IN CNAME x\n")
	f.Add(soaLines + "a IN TXT \"\n\"\nb IN A 1.2.3.4 ; )\n")
	dir := files(f, f.TempDir(), map[string]string{"inc.zone": "i IN A 192.0.2.1\n$INCLUDE inc2.zone\n", "inc2.zone": "j IN AAAA ::1\n"})
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<16 {
			return
		}
		rrs, where, err := parseText(t, dir, text)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		root, _ := os.OpenRoot(dir)
		defer root.Close()
		l := &loader{userPath: "z.zone", absTop: filepath.Join(dir, "z.zone"), rootDir: dir, root: root}
		out, err := l.check("example.org.", rrs, where)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("check error %T is not an *Error: %v", err, err)
			}
			return
		}
		if out[0].Header().Rrtype != dns.TypeSOA || len(out) != len(rrs) {
			t.Fatalf("checked zone: %d records of %d, first %s", len(out), len(rrs), out[0])
		}
	})
}
