package failover

import "testing"

func TestRerun(t *testing.T) {
	mine := Assignment{Role: "web", Holder: "a", Epoch: 5, Previous: "b"}
	theirs := Assignment{Role: "web", Holder: "b", Epoch: 6, Previous: "a"}
	promote := func(e uint64, prev string) Event {
		return Event{Kind: EventPromote, Role: "web", Epoch: e, Node: "a", Holder: "a", Previous: prev, Cause: CauseRerun}
	}
	demote := func(e uint64, holder string) Event {
		return Event{Kind: EventDemote, Role: "web", Epoch: e, Node: "a", Holder: holder, Previous: "a", Cause: CauseRerun}
	}
	tests := []struct {
		name    string
		last    Run
		cur     Assignment
		holding bool
		want    *Event
	}{
		{"restart after promote, role moved", Run{EventPromote, 5, true}, theirs, false, new(demote(5, "b"))},
		{"restart after promote, still assigned", Run{EventPromote, 5, true}, mine, false, new(demote(5, ""))},
		{"restart during promote", Run{EventPromote, 5, false}, mine, false, new(demote(5, ""))},
		{"restart during demote", Run{EventDemote, 5, false}, theirs, false, new(demote(5, "b"))},
		{"restart after demote", Run{EventDemote, 5, true}, theirs, false, nil},
		{"never ran a hook", Run{}, theirs, false, nil},
		{"holding, promote done", Run{EventPromote, 5, true}, mine, true, nil},
		{"holding, promote interrupted", Run{EventPromote, 5, false}, mine, true, new(promote(5, "b"))},
		{"holding, last promote older epoch", Run{EventPromote, 4, true}, mine, true, new(promote(5, "b"))},
		{"holding, last was demote", Run{EventDemote, 4, true}, mine, true, new(promote(5, "b"))},
		{"holding, nothing ran", Run{}, mine, true, new(promote(5, "b"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Rerun("a", tt.last, tt.cur, tt.holding)
			if tt.want == nil {
				if ok {
					t.Fatalf("Rerun(%+v, %+v, %v) = %v, want none", tt.last, tt.cur, tt.holding, got)
				}
				return
			}
			if !ok || got != *tt.want {
				t.Fatalf("Rerun(%+v, %+v, %v) = %v, %v, want %v", tt.last, tt.cur, tt.holding, got, ok, *tt.want)
			}
		})
	}
}

func TestKindStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{EventPromote.String(), "promote"},
		{EventDemote.String(), "demote"},
		{EventChange.String(), "change"},
		{EventKind(0).String(), "event(0)"},
		{OpAssign.String(), "assign"},
		{OpRelease.String(), "release"},
		{Op(0).String(), "op(0)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}
