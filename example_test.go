package buoy_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"buoy"
)

// A program embeds a node: this one creates a new one-node cluster on
// loopback, waits for it to elect itself, and lists the members.
func Example() {
	dir, err := os.MkdirTemp("", "buoy-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	n, err := buoy.New(buoy.Config{
		Name:      "pi1",
		DataDir:   filepath.Join(dir, "pi1"),
		PeerAddr:  "127.0.0.1:0",
		HTTPAddr:  "-", // no HTTP API
		Bootstrap: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	members, err := n.Members(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range members {
		fmt.Println(m.Name, m.State, m.Voter, m.Leader)
	}
	// Output: pi1 alive true true
}
