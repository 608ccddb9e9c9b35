# Thin wrappers; .ci/run is what CI runs.
.PHONY: check test fmt vet lint fuzz build dev

check: fmt vet lint test

test:
	go test -race -count=1 ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	go vet ./...

lint:
	go tool -modfile=tools/go.mod staticcheck ./...

# Short runs of every fuzz target (FUZZTIME=30s make fuzz for longer).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

build:
	go build -o bin/buoy ./cmd/buoy

dev:
	go run ./cmd/buoy dev
