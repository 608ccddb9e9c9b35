package kv_test

import (
	"fmt"
	"time"

	"buoy/internal/kv"
)

func Example() {
	m := kv.New(kv.Options{})

	// Every change applies at a Raft index and returns a new version.
	put := kv.Put("app/config", []byte("v1"), time.Time{})
	m, _, _ = m.Apply(10, &put)

	// Compare-and-set on the modify index: only the writer that saw index
	// 10 wins.
	cas := kv.Put("app/config", []byte("v2"), time.Time{})
	cas.Checks = []kv.Check{kv.CAS("app/config", 10)}
	m, _, _ = m.Apply(11, &cas)
	_, _, err := m.Apply(12, &cas) // the index is 11 now
	fmt.Println(err)

	e, _ := m.Get("app/config")
	fmt.Printf("%s create=%d modify=%d\n", e.Value, e.CreateIndex, e.ModifyIndex)

	// A watcher that last saw index 10 gets what changed since.
	evs, _ := m.Changes(10, "app/")
	for _, ev := range evs {
		fmt.Println(ev.Index, ev.Kind, ev.Entry.Key, string(ev.Entry.Value))
	}
	// Output:
	// check failed: check 0 (modify_index "app/config"): key is modify_index 11
	// v2 create=10 modify=11
	// 11 put app/config v2
}
