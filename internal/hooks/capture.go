package hooks

import (
	"fmt"
	"sync"
)

// capture keeps a bounded copy of a hook's output: the first half of its
// limit and the most recent half, since a hook's first lines say what it
// set out to do and its last lines why it stopped.
type capture struct {
	limit int

	// mu guards the following fields; exec writes from its own goroutine.
	mu      sync.Mutex
	head    []byte
	tail    []byte // ring of the last limit/2 bytes once head is full
	tailPos int
	dropped int64
}

func newCapture(limit int) *capture { return &capture{limit: limit} }

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	headCap := c.limit - c.limit/2
	if room := headCap - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	tailCap := c.limit / 2
	for _, b := range p {
		if len(c.tail) < tailCap {
			c.tail = append(c.tail, b)
			continue
		}
		if tailCap == 0 {
			c.dropped++
			continue
		}
		c.tail[c.tailPos] = b
		c.tailPos = (c.tailPos + 1) % tailCap
		c.dropped++
	}
	return n, nil
}

// Bytes returns the kept output, with a marker where bytes were dropped,
// and how many were dropped.
func (c *capture) Bytes() ([]byte, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]byte(nil), c.head...)
	if c.dropped > 0 {
		out = fmt.Appendf(out, "\n[... %d bytes dropped ...]\n", c.dropped)
	}
	out = append(out, c.tail[c.tailPos:]...)
	out = append(out, c.tail[:c.tailPos]...)
	return out, c.dropped
}
