package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoleRoundTrip(t *testing.T) {
	renew := RoleRenewal{Role: "web", Epoch: 7, Node: "pi2", Session: 3, Seq: 41}
	b, err := json.Marshal(renew)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRole[RoleRenewal](b)
	if err != nil || got != renew {
		t.Fatalf("DecodeRole(%s) = %+v, %v, want %+v", b, got, err, renew)
	}
	view := RoleView{Leader: "pi1", Alive: []string{"pi1", "pi2"}, Healthy: map[string][]string{"web": {"pi2"}}}
	b, _ = json.Marshal(view)
	v, err := DecodeRole[RoleView](b)
	if err != nil || v.Leader != "pi1" || len(v.Alive) != 2 || v.Healthy["web"][0] != "pi2" {
		t.Fatalf("DecodeRole(%s) = %+v, %v", b, v, err)
	}
}

func TestRoleRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		body string
		dec  func([]byte) error
	}{
		{"renewal not json", `{`, decodeAs[RoleRenewal]},
		{"renewal no role", `{"epoch":1,"node":"pi1"}`, decodeAs[RoleRenewal]},
		{"renewal epoch 0", `{"role":"web","node":"pi1"}`, decodeAs[RoleRenewal]},
		{"renewal no node", `{"role":"web","epoch":1}`, decodeAs[RoleRenewal]},
		{"renewal long role", `{"role":"` + long + `","epoch":1,"node":"pi1"}`, decodeAs[RoleRenewal]},
		{"ack epoch 0", `{"role":"web"}`, decodeAs[RoleAck]},
		{"release no node", `{"role":"web","epoch":2}`, decodeAs[RoleRelease]},
		{"ping empty role", `{"from":"pi1","healthy":[""]}`, decodeAs[RolePing]},
		{"ping no sender", `{"healthy":["web"]}`, decodeAs[RolePing]},
		{"view long node", `{"alive":["` + long + `"]}`, decodeAs[RoleView]},
		{"view empty role", `{"healthy":{"":["pi1"]}}`, decodeAs[RoleView]},
		{"move no node", `{"role":"web"}`, decodeAs[RoleMove]},
		{"wrong type", `{"role":5}`, decodeAs[RoleMove]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dec([]byte(tt.body))
			if !errors.Is(err, ErrInvalidRoleMsg) {
				t.Fatalf("decode(%q) = %v, want ErrInvalidRoleMsg", tt.body, err)
			}
		})
	}
}

func decodeAs[M roleMsg](b []byte) error {
	_, err := DecodeRole[M](b)
	return err
}

func FuzzDecodeRole(f *testing.F) {
	f.Add([]byte(`{"role":"web","epoch":7,"node":"pi2","session":3,"seq":41}`))
	f.Add([]byte(`{"leader":"pi1","alive":["pi1"],"healthy":{"web":["pi1"]}}`))
	f.Add([]byte(`{"from":"pi1","healthy":["web","db"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dec := range []func([]byte) error{
			decodeAs[RoleRenewal], decodeAs[RoleAck], decodeAs[RoleRelease],
			decodeAs[RolePing], decodeAs[RoleView], decodeAs[RoleMove],
		} {
			if err := dec(b); err != nil && !errors.Is(err, ErrInvalidRoleMsg) {
				t.Fatalf("decode(%q) = %v, want nil or ErrInvalidRoleMsg", b, err)
			}
		}
		// What decodes must survive a round trip unchanged.
		if m, err := DecodeRole[RoleRenewal](b); err == nil {
			again, _ := json.Marshal(m)
			if m2, err := DecodeRole[RoleRenewal](again); err != nil || m2 != m {
				t.Fatalf("round trip of %+v = %+v, %v", m, m2, err)
			}
		}
	})
}
