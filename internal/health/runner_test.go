package health

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// scripted is a prober whose results follow a script, one character per
// probe: '+' pass, '-' fail, 'h' hang until cancelled or timed out. After
// the script it keeps the last result.
type scripted struct {
	timeout time.Duration

	mu    sync.Mutex
	steps string
	n     int
}

var errScripted = errors.New("scripted failure")

func (p *scripted) Probe(ctx context.Context) error {
	p.mu.Lock()
	step := p.steps[min(p.n, len(p.steps)-1)]
	p.n++
	p.mu.Unlock()
	switch step {
	case '+':
		return nil
	case 'h':
		return withTimeout(ctx, p.timeout, "hang", func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
	}
	return errScripted
}

func (p *scripted) probes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// startScripted runs one scripted check per script under the given spec
// timing, inside the caller's synctest bubble.
func startScripted(spec Spec, notify chan<- Transition, scripts ...string) (*Runner, []*scripted) {
	specs := make([]Spec, len(scripts))
	probers := make([]Prober, len(scripts))
	ps := make([]*scripted, len(scripts))
	for i, s := range scripts {
		specs[i] = spec
		specs[i].Name = "check" + string(rune('A'+i))
		ps[i] = &scripted{steps: s, timeout: spec.WithDefaults().Timeout}
		probers[i] = ps[i]
	}
	return start(specs, probers, Options{Name: "web", Notify: notify}), ps
}

// TestRunnerTransitions checks, in virtual time, when transitions happen:
// probes at 0s, 1s, 2s, ... with rise 2 and fall 2.
func TestRunnerTransitions(t *testing.T) {
	tests := []struct {
		name   string
		script string
		// want lists transitions as offsets from the start and status.
		want []string
	}{
		{"rises after two passes", "++", []string{"1s healthy"}},
		{"one blip does not fall", "++-+", []string{"1s healthy"}},
		{"falls after two failures", "++--", []string{"1s healthy", "3s failing"}},
		{"flapping never rises", "+-+-+-", nil},
		{"recovers", "++--++", []string{"1s healthy", "3s failing", "5s healthy"}},
		{"hung probe counts as a failure at its timeout", "++hh", []string{"1s healthy", "3.5s failing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				notify := make(chan Transition, 16)
				t0 := time.Now()
				r, ps := startScripted(Spec{Type: TypeTCP, Addr: "127.0.0.1:1", Interval: time.Second, Timeout: 500 * time.Millisecond}, notify, tt.script)
				// Run the script and three more probes.
				for ps[0].probes() < len(tt.script)+3 {
					time.Sleep(time.Second)
				}
				synctest.Wait()
				r.Close()
				close(notify)
				var got []string
				for tr := range notify {
					state := "failing"
					if tr.Healthy {
						state = "healthy"
					}
					got = append(got, tr.At.Sub(t0).String()+" "+state)
					if tr.Runner != "web" || tr.Name != "checkA" || tr.Check != 0 || tr.AllHealthy != tr.Healthy {
						t.Errorf("transition %+v: want runner web, check 0 named checkA, AllHealthy = Healthy", tr)
					}
					if tr.Healthy != (tr.Err == nil) {
						t.Errorf("transition %+v: Err must be set exactly for a fall", tr)
					}
				}
				if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
					t.Errorf("script %q: transitions = %v, want %v", tt.script, got, tt.want)
				}
			})
		})
	}
}

func TestRunnerAllHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notify := make(chan Transition, 16)
		// A rises at 1s; B only at 3s.
		r, _ := startScripted(Spec{Type: TypeTCP, Addr: "127.0.0.1:1", Interval: time.Second, Rise: 2}, notify, "++", "--++")
		defer r.Close()
		if r.Healthy() {
			t.Fatal("Healthy() before any probe = true, want false: checks start failing")
		}
		time.Sleep(1500 * time.Millisecond)
		if tr := <-notify; tr.Name != "checkA" || !tr.Healthy || tr.AllHealthy {
			t.Errorf("first transition = %+v, want checkA healthy, not all healthy", tr)
		}
		if r.Healthy() {
			t.Error("Healthy() with checkB failing = true, want false")
		}
		time.Sleep(2 * time.Second)
		if tr := <-notify; tr.Name != "checkB" || !tr.Healthy || !tr.AllHealthy {
			t.Errorf("second transition = %+v, want checkB healthy, all healthy", tr)
		}
		st := r.Status()
		if !st.Healthy || !r.Healthy() || len(st.Checks) != 2 || st.Checks[1].Passes != 2 || st.Checks[1].Probes != 4 {
			t.Errorf("Status() = %+v, want healthy with checkB at 2 passes after 4 probes", st)
		}
	})
}

func TestRunnerDropsWhenReaderIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notify := make(chan Transition) // nobody reads
		r, ps := startScripted(Spec{Type: TypeTCP, Addr: "127.0.0.1:1", Interval: time.Second, Rise: 1, Fall: 1}, notify, "+-+-")
		for ps[0].probes() < 4 {
			time.Sleep(time.Second)
		}
		synctest.Wait()
		r.Close()
		if st := r.Status(); st.Dropped != 4 || st.Checks[0].Healthy {
			t.Errorf("Status() = %+v, want 4 dropped transitions and the check failing", st)
		}
	})
}

func TestRunnerStatusKeepsReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := startScripted(Spec{Type: TypeTCP, Addr: "127.0.0.1:1"}, nil, "-")
		defer r.Close()
		synctest.Wait()
		st := r.Status()
		if c := st.Checks[0]; !errors.Is(c.LastErr, errScripted) || c.Probes != 1 || c.Fails != 1 || c.LastAt.IsZero() {
			t.Errorf("Status().Checks[0] = %+v, want one failed probe with its reason", c)
		}
	})
}

func TestRunnerNoChecksIsHealthy(t *testing.T) {
	r, err := Start(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Healthy() {
		t.Error("Healthy() with no checks = false, want true")
	}
}

func TestStartRefusesBadSpec(t *testing.T) {
	_, err := Start([]Spec{{Type: TypeTCP, Addr: "127.0.0.1:1"}, {Type: TypeHTTP}}, Options{})
	if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "check 2 (http)") {
		t.Errorf("Start(second spec without url) = %v, want ErrSpec naming check 2", err)
	}
}

// TestRunnerReal runs real tcp checks on loopback: one against a listener
// turns healthy, one against a closed port stays failing with its reason.
func TestRunnerReal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	notify := make(chan Transition, 4)
	specs := []Spec{
		{Type: TypeTCP, Addr: l.Addr().String(), Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2},
		{Type: TypeTCP, Addr: closedPort(t), Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond},
	}
	r, err := Start(specs, Options{Name: "db", Notify: notify})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	select {
	case tr := <-notify:
		if tr.Check != 0 || !tr.Healthy || tr.AllHealthy || tr.Runner != "db" {
			t.Errorf("transition = %+v, want check 0 healthy in runner db, not all healthy", tr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no transition from a check against a listening socket")
	}
	st := r.Status()
	// (TestTCPProbe checks the reason; on a loaded machine a probe here
	// may time out instead of being refused.)
	if c := st.Checks[1]; c.Healthy || c.Probes == 0 || c.LastErr == nil {
		t.Errorf("closed-port check status = %+v, want failing with a reason", c)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	r.Close() // a second Close is harmless
}
