package kv

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key  string
		want error
	}{
		{"a", nil},
		{"app/config/db", nil},
		{"ключ/値", nil},
		{strings.Repeat("k", 512), nil},
		{strings.Repeat("k", 513), ErrKeyTooLong},
		{"", ErrInvalidKey},
		{"bad\xffutf8", ErrInvalidKey},
		{"nul\x00inside", ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			err := DefaultLimits.CheckKey(tt.key)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("CheckKey(%q) = %v, want %v", tt.key, err, tt.want)
			}
		})
	}
}

func TestLimitsCheck(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"default", DefaultLimits, true},
		{"ceiling", MaxLimits, true},
		{"zero", Limits{}, false},
		{"key above ceiling", Limits{MaxKeyBytes: MaxLimits.MaxKeyBytes + 1, MaxValueBytes: 1, MaxTxnOps: 1}, false},
		{"negative value", Limits{MaxKeyBytes: 1, MaxValueBytes: -1, MaxTxnOps: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.l.Check(); (err == nil) != tt.ok {
				t.Errorf("%+v.Check() = %v, want ok=%v", tt.l, err, tt.ok)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	small := Limits{MaxKeyBytes: 8, MaxValueBytes: 4, MaxTxnOps: 2}
	put := func(k, v string) Op { return Op{Kind: OpPut, Key: k, Value: []byte(v)} }
	tests := []struct {
		name string
		c    Command
		want error
	}{
		{"put", Command{Ops: []Op{put("k", "v")}}, nil},
		{"put with ttl", Command{Ops: []Op{{Kind: OpPut, Key: "k", Expires: now}}}, nil},
		{"empty value", Command{Ops: []Op{put("k", "")}}, nil},
		{"delete prefix all", DeletePrefix(""), nil},
		{"cas create", Command{Checks: []Check{CAS("k", 0)}, Ops: []Op{put("k", "v")}}, nil},
		{"txn", Command{
			Checks: []Check{{Kind: CheckValue, Key: "a", Value: []byte("x")}, {Kind: CheckExists, Key: "b"}},
			Ops:    []Op{{Kind: OpGet, Key: "a"}, {Kind: OpDelete, Key: "b"}},
		}, nil},
		{"expire", Expire(now, []Expiry{{Key: "k", ModifyIndex: 3}}), nil},
		{"no ops", Command{Checks: []Check{CAS("k", 0)}}, ErrInvalidCommand},
		{"key too long", Command{Ops: []Op{put("123456789", "v")}}, ErrKeyTooLong},
		{"check key too long", Command{Checks: []Check{CAS("123456789", 0)}, Ops: []Op{put("k", "v")}}, ErrKeyTooLong},
		{"value too large", Command{Ops: []Op{put("k", "12345")}}, ErrValueTooLarge},
		{"check value too large", Command{Checks: []Check{{Kind: CheckValue, Key: "k", Value: []byte("12345")}}, Ops: []Op{put("k", "v")}}, ErrValueTooLarge},
		{"too many ops", Command{Ops: []Op{put("a", ""), put("b", ""), put("c", "")}}, ErrTooManyOps},
		{"too many checks", Command{Checks: []Check{CAS("a", 0), CAS("b", 0), CAS("c", 0)}, Ops: []Op{put("a", "")}}, ErrTooManyOps},
		{"empty key", Command{Ops: []Op{put("", "v")}}, ErrInvalidKey},
		{"nul prefix", DeletePrefix("a\x00"), ErrInvalidKey},
		{"unknown op", Command{Ops: []Op{{Kind: 99, Key: "k"}}}, ErrUnknownOp},
		{"unknown check", Command{Checks: []Check{{Kind: 0, Key: "k"}}, Ops: []Op{put("k", "")}}, ErrUnknownOp},
		{"modify_index 0", Command{Checks: []Check{{Kind: CheckModifyIndex, Key: "k"}}, Ops: []Op{put("k", "")}}, ErrInvalidCommand},
		{"exists with index", Command{Checks: []Check{{Kind: CheckExists, Key: "k", Index: 2}}, Ops: []Op{put("k", "")}}, ErrInvalidCommand},
		{"put with index", Command{Ops: []Op{{Kind: OpPut, Key: "k", Index: 4}}}, ErrInvalidCommand},
		{"delete with value", Command{Ops: []Op{{Kind: OpDelete, Key: "k", Value: []byte("x")}}}, ErrInvalidCommand},
		{"expire without time", Expire(time.Time{}, []Expiry{{Key: "k", ModifyIndex: 3}}), ErrInvalidCommand},
		{"expire without index", Expire(now, []Expiry{{Key: "k"}}), ErrInvalidCommand},
		{"expiry before 1970", Command{Ops: []Op{{Kind: OpPut, Key: "k", Expires: time.Unix(-5, 0)}}}, ErrInvalidCommand},
		{"expiry after 2262", Command{Ops: []Op{{Kind: OpPut, Key: "k", Expires: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}}}, ErrInvalidCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate(small)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Validate(%+v) = %v, want %v", tt.c, err, tt.want)
			}
		})
	}
}

func TestParseKinds(t *testing.T) {
	for k := range opNames {
		if got, err := ParseOpKind(k.String()); err != nil || got != k {
			t.Errorf("ParseOpKind(%q) = %v, %v, want %v", k.String(), got, err, k)
		}
	}
	for k := range checkNames {
		if got, err := ParseCheckKind(k.String()); err != nil || got != k {
			t.Errorf("ParseCheckKind(%q) = %v, %v, want %v", k.String(), got, err, k)
		}
	}
	if _, err := ParseOpKind("increment"); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("ParseOpKind(increment) = %v, want %v", err, ErrUnknownOp)
	}
	if _, err := ParseCheckKind("greater"); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("ParseCheckKind(greater) = %v, want %v", err, ErrUnknownOp)
	}
}
