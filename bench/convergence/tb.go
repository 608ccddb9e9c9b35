package main

import "buoy/bench/internal/labsession"

// session is the test context the lab lives in while the benchmark drives
// it outside go test.
type session = labsession.Session
