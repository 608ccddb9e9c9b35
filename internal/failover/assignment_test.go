package failover

import (
	"errors"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	held := Assignment{Role: "web", Holder: "a", Epoch: 3, Previous: "b"}
	vacant := Assignment{Role: "web", Epoch: 4, Previous: "a"}
	tests := []struct {
		name string
		cur  Assignment
		cmd  Command
		want Assignment
		err  error
	}{
		{"first", Assignment{}, Command{Op: OpAssign, Role: "web", Node: "a", Epoch: 1},
			Assignment{Role: "web", Holder: "a", Epoch: 1, Since: now}, nil},
		{"move", held, Command{Op: OpAssign, Role: "web", Node: "c", Epoch: 4},
			Assignment{Role: "web", Holder: "c", Epoch: 4, Previous: "a", Since: now}, nil},
		{"release", held, Command{Op: OpRelease, Role: "web", Epoch: 4},
			Assignment{Role: "web", Epoch: 4, Previous: "a", Since: now}, nil},
		{"assign after release keeps the last holder", vacant, Command{Op: OpAssign, Role: "web", Node: "c", Epoch: 5},
			Assignment{Role: "web", Holder: "c", Epoch: 5, Previous: "a", Since: now}, nil},
		{"same epoch again", held, Command{Op: OpAssign, Role: "web", Node: "c", Epoch: 3}, held, ErrStaleEpoch},
		{"older epoch", held, Command{Op: OpRelease, Role: "web", Epoch: 2}, held, ErrStaleEpoch},
		{"skipped epoch", held, Command{Op: OpRelease, Role: "web", Epoch: 5}, held, ErrStaleEpoch},
		{"wrong role", held, Command{Op: OpRelease, Role: "db", Epoch: 4}, held, ErrBadCommand},
		{"bad role name", Assignment{}, Command{Op: OpAssign, Role: "Web", Node: "a", Epoch: 1}, Assignment{}, ErrBadCommand},
		{"assign nobody", held, Command{Op: OpAssign, Role: "web", Epoch: 4}, held, ErrBadCommand},
		{"release naming a node", held, Command{Op: OpRelease, Role: "web", Node: "c", Epoch: 4}, held, ErrBadCommand},
		{"unknown op", held, Command{Op: 9, Role: "web", Epoch: 4}, held, ErrBadCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cur.Apply(tt.cmd, now)
			if got != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("%+v.Apply(%v) = %+v, %v, want %+v, %v", tt.cur, tt.cmd, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestCommandString(t *testing.T) {
	tests := []struct {
		c    Command
		want string
	}{
		{Command{Op: OpAssign, Role: "web", Node: "pi2", Epoch: 8, Reason: ReasonMove}, "web: assign pi2 epoch 8 (move)"},
		{Command{Op: OpRelease, Role: "web", Epoch: 9, Reason: ReasonUnhealthy}, "web: release epoch 9 (unhealthy)"},
		{Command{Op: 7, Role: "web", Epoch: 1}, "web: op(7) epoch 1 ()"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
