package buoy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"buoy/internal/pki"
)

// saveReadOnly runs pki.SaveIdentity(dir, id) as if dir were on a
// read-only file system, without changing dir for anyone else. As root,
// for whom permission bits stop nothing, it saves from a thread with its
// own mount namespace in which dir is bind-mounted read-only; the thread
// ends with its goroutine (locked to it, never unlocked), and the mount
// with it. Otherwise it makes dir read-only for the time of the save.
func saveReadOnly(dir string, id *pki.Identity) error {
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			return err
		}
		defer os.Chmod(dir, 0o700)
		return pki.SaveIdentity(dir, id)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		for _, step := range []struct {
			what string
			do   func() error
		}{
			{"unshare mount namespace", func() error { return syscall.Unshare(syscall.CLONE_NEWNS) }},
			{"make mounts private", func() error { return syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "") }},
			{"bind-mount data dir", func() error { return syscall.Mount(dir, dir, "", syscall.MS_BIND, "") }},
			{"remount read-only", func() error {
				return syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, "")
			}},
		} {
			if err := step.do(); err != nil {
				errc <- fmt.Errorf("test setup: %s: %w", step.what, err)
				return
			}
		}
		errc <- pki.SaveIdentity(dir, id)
	}()
	return <-errc
}

// TestCertRenewalFailure: a renewal whose save fails (read-only data dir)
// keeps the current certificate on disk, in memory and on the wire, logs
// a warning, and succeeds at a later check once the disk is writable.
func TestCertRenewalFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, ca := stoppedSolo(t, ctx)
	dir := cfg.DataDir
	short := shortenCert(t, ca, dir, 0, 10*time.Minute)

	logs := &logLines{}
	cfg.Logger = logs.logger()
	var readOnly atomic.Bool
	readOnly.Store(true)
	n := startCertNode(t, ctx, cfg, func(n *Node) {
		n.cert.every = 50 * time.Millisecond
		n.cert.save = func(dir string, id *pki.Identity) error {
			if readOnly.Load() {
				return saveReadOnly(dir, id)
			}
			return pki.SaveIdentity(dir, id)
		}
	})
	waitFor(t, "two failed renewals", func() bool {
		return logs.count("level=WARN", "node certificate renewal failed", "keeping the current certificate") >= 2
	})
	if logs.count("level=WARN", "renewal failed", "read-only file system") == 0 && logs.count("level=WARN", "renewal failed", "permission denied") == 0 {
		t.Errorf("the renewal warnings do not say why:\n%s", logs.buf.String())
	}
	if got := serialOf(n.cert.cur.Load()); got != serialOf(short) {
		t.Errorf("after failed renewals the node uses serial %s, want the old %s", got, serialOf(short))
	}
	if got := presented(t, n); got.SerialNumber.Cmp(short.Cert.SerialNumber) != 0 {
		t.Errorf("after failed renewals the node presents serial %X, want the old %s", got.SerialNumber, serialOf(short))
	}
	if onDisk, err := pki.LoadIdentity(dir); err != nil || serialOf(onDisk) != serialOf(short) {
		t.Errorf("after failed renewals LoadIdentity = %v, %v; want the old certificate intact", onDisk, err)
	}
	if _, err := n.RenewCert(ctx); err == nil || errors.Is(err, errStateBehind) {
		t.Errorf("RenewCert on a read-only data dir = %v, want the save error", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if m, _ := filepath.Match(".*.tmp-*", e.Name()); m {
			t.Errorf("failed renewals left %s in the data dir", e.Name())
		}
	}

	readOnly.Store(false)
	waitFor(t, "a renewal once the disk is writable", func() bool { return serialOf(n.cert.cur.Load()) != serialOf(short) })
	if onDisk, err := pki.LoadIdentity(dir); err != nil || serialOf(onDisk) != serialOf(n.cert.cur.Load()) {
		t.Errorf("after the renewal LoadIdentity = %v; want the renewed certificate", err)
	}
}
