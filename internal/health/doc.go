// Package health runs a node's local health checks for its failover roles.
//
// A check is one of four kinds: tcp (a connection is accepted within the
// timeout), http and https (the response status is 2xx and, if asked, the body
// contains a substring), and exec (a command exits 0 within the timeout). Each
// check runs every interval and feeds a Tracker, which turns the stream of
// probe results into a status with hysteresis: a check becomes healthy after
// rise consecutive passes and failing after fall consecutive failures, so one
// blip does not move a role. Every check starts as failing: a node must prove
// a service works before it is offered a role.
//
// A Runner owns one goroutine per check and reports status transitions on a
// channel the caller supplies. The runner never waits for the reader: a
// transition that does not fit is dropped and counted, and Status gives the
// current state at any time, so a slow reader resynchronises by reading it.
//
// Check definitions come from the roles section of the YAML config (see
// Spec.UnmarshalYAML), for example
//
//	{type: http, url: "http://127.0.0.1:8080/health", interval: 1s, timeout: 500ms, rise: 2, fall: 2}
package health
