package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"buoy"
)

const certUsage = `buoy cert [--json]          this node's certificate: subject, key, validity, renewal date
buoy cert renew [--json]    renew it now, whatever its age (same key and name)`

// runCert runs "buoy cert" and "buoy cert renew".
func runCert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("buoy cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, certUsage) }
	addr, token := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	// Flags may come before or after the subcommand.
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	sub := "show"
	if len(pos) > 0 {
		sub = pos[0]
	}
	if sub != "show" && sub != "renew" {
		return fmt.Errorf("%w: unknown command \"buoy cert %s\"\n%s", errUsage, sub, certUsage)
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: unexpected argument %q\n%s", errUsage, pos[1], certUsage)
	}
	c := newClient(*addr, *token)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if sub == "show" {
		var info buoy.CertInfo
		if err := c.do(ctx, "GET", "/v1/cert", nil, &info); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, info)
		}
		printCert(stdout, info)
		return nil
	}
	var r buoy.CertRenewal
	if err := c.do(ctx, "POST", "/v1/cert/renew", nil, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, r)
	}
	fmt.Fprintf(stdout, "renewed the certificate of %s (was serial %s, valid until %s)\n",
		r.Current.Subject, r.Previous.Serial, certTime(r.Previous.NotAfter))
	printCert(stdout, r.Current)
	return nil
}

func printCert(w io.Writer, c buoy.CertInfo) {
	fmt.Fprintf(w, "subject:      %s\nserial:       %s\nkey:          %s\nissuer:       %s (%s)\nnot before:   %s\nnot after:    %s (%s)\nrenew after:  %s (automatic)\n",
		c.Subject, c.Serial, c.KeyFingerprint, c.Issuer, c.CAHash,
		certTime(c.NotBefore), certTime(c.NotAfter), daysLeft(c.DaysLeft), certTime(c.RenewAfter))
}

func certTime(t time.Time) string { return t.Local().Format(time.RFC3339) }

func daysLeft(d int) string {
	switch {
	case d < 0:
		return "EXPIRED"
	case d == 1:
		return "1 day left"
	}
	return fmt.Sprintf("%d days left", d)
}
