package netlab_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperArg as the first argument makes the test binary act as the small
// TCP tool the tests run inside namespaces, instead of running tests.
const helperArg = "netlab-test-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == helperArg {
		os.Exit(helperMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// helperMain runs one of:
//
//	serve ADDR...   listen on each ADDR, print "listening ADDR" for each;
//	                tell every client "seen IP:PORT" (its address as seen
//	                here) when it connects and again for every line it sends
//	dial [-from IP:PORT] [-hold] [-timeout D] ADDR
//	                connect, print the server's "seen" line; with -hold,
//	                then send a line for every line read on stdin and print
//	                each answer, or "error: ..." and exit 1
func helperMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: want serve or dial")
		return 2
	}
	switch args[0] {
	case "serve":
		return serveMain(args[1:])
	case "dial":
		return dialMain(args[1:])
	}
	fmt.Fprintf(os.Stderr, "helper: unknown mode %q\n", args[0])
	return 2
}

func serveMain(addrs []string) int {
	errc := make(chan error, len(addrs))
	for _, a := range addrs {
		l, err := net.Listen("tcp4", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		fmt.Printf("listening %s\n", l.Addr())
		// The helper serves until it is killed; its goroutines end with it.
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					errc <- err
					return
				}
				go answer(c)
			}
		}()
	}
	fmt.Fprintln(os.Stderr, "helper:", <-errc)
	return 1
}

// answer tells the client how it is seen, at once and for every line.
func answer(c net.Conn) {
	defer c.Close()
	seen := "seen " + c.RemoteAddr().String() + "\n"
	if _, err := c.Write([]byte(seen)); err != nil {
		return
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if _, err := c.Write([]byte(seen)); err != nil {
			return
		}
	}
}

func dialMain(args []string) int {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	from := fs.String("from", "", "local `IP:PORT` to bind")
	hold := fs.Bool("hold", false, "keep the connection and ping on every stdin line")
	timeout := fs.Duration("timeout", 2*time.Second, "bound of the connect and of each answer")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "helper: dial [-from IP:PORT] [-hold] [-timeout D] ADDR")
		return 2
	}
	d := net.Dialer{Timeout: *timeout}
	if *from != "" {
		la, err := net.ResolveTCPAddr("tcp4", *from)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 2
		}
		d.LocalAddr = la
		// Lets the same local port dial again while the last connection
		// from it is in TIME_WAIT.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.DialContext(context.Background(), "tcp4", fs.Arg(0))
	if err != nil {
		report(err)
		return 1
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readSeen := func() bool {
		_ = c.SetReadDeadline(time.Now().Add(*timeout))
		line, err := r.ReadString('\n')
		if err != nil {
			report(err)
			return false
		}
		fmt.Print(line)
		return true
	}
	if !readSeen() {
		return 1
	}
	if !*hold {
		return 0
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			report(err)
			return 1
		}
		if !readSeen() {
			return 1
		}
	}
	return 0
}

// report prints a dial error on stdout, where a held connection's reader
// expects its answer, and on stderr, where Host.Run's error shows it.
func report(err error) {
	fmt.Println("error:", err)
	fmt.Fprintln(os.Stderr, "error:", err)
}

// seenLine extracts the address from a "seen IP:PORT" line.
func seenLine(line string) (string, error) {
	line = strings.TrimSpace(line)
	addr, ok := strings.CutPrefix(line, "seen ")
	if !ok {
		return "", fmt.Errorf("helper said %q, want \"seen IP:PORT\"", line)
	}
	return addr, nil
}
