package consensus

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func servers(spec ...string) []raft.Server {
	var out []raft.Server
	for _, s := range spec {
		suf := raft.Voter
		if s[0] == '~' {
			suf, s = raft.Nonvoter, s[1:]
		}
		out = append(out, raft.Server{ID: raft.ServerID(s), Address: raft.ServerAddress(s), Suffrage: suf})
	}
	return out
}

func TestPlan(t *testing.T) {
	all := func(string) bool { return true }
	tests := []struct {
		name    string
		servers []raft.Server
		members []string
		max     int
		alive   func(string) bool
		want    []string
	}{
		{"in sync", servers("a", "b", "c"), []string{"a", "b", "c"}, 5, all, nil},
		{"new member added then promoted", servers("a"), []string{"a", "b"}, 5, all,
			[]string{"add-nonvoter b", "promote b"}},
		{"dead member added but not promoted", servers("a"), []string{"a", "b"}, 5,
			func(n string) bool { return n != "b" }, []string{"add-nonvoter b"}},
		{"sixth stays non-voter", servers("a", "b", "c", "d", "e"), []string{"a", "b", "c", "d", "e", "f"}, 5, all,
			[]string{"add-nonvoter f"}},
		{"promote earliest admitted", servers("a", "b", "~d", "~c"), []string{"a", "b", "c", "d"}, 3, all,
			[]string{"promote c"}},
		{"removed voter leaves, non-voter promoted", servers("a", "b", "c", "d", "e", "~f"), []string{"a", "b", "c", "d", "f"}, 5, all,
			[]string{"remove e", "promote f"}},
		{"never remove the last voter", servers("a"), nil, 5, all, nil},
		{"remove non-voter", servers("a", "~b"), []string{"a"}, 5, all, []string{"remove b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range Plan(tt.servers, tt.members, tt.max, tt.alive) {
				got = append(got, fmt.Sprintf("%s %s", c.Kind, c.Name))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Plan = %q, want %q", got, tt.want)
			}
		})
	}
}
