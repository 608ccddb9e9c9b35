// Package e2e tests Buoy the way a user meets it: real "buoy agent"
// processes on loopback, each with its own data dir, driven only through
// the buoy command line (members, status, token, leave, remove) and stopped
// with SIGTERM or kill -9. It proves that a cluster can be started, joined
// with a token, killed and restarted without losing anything, and that bad
// input (wrong, expired, revoked, used-up or foreign tokens, taken names,
// bad config files and data dirs) is refused with a clear message.
//
// The package holds tests only; TestMain builds the buoy binary once.
package e2e
