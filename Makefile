# pixelrelay — see README.md
GO       ?= go
BIN      ?= pixelrelay
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X pixelrelay/cli.Version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build test run bench bench-quick lint fuzz soak clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# The whole suite, race detector on. Real-client tests need swaks and msmtp
# (Debian packages; .ci/run installs them).
test:
	$(GO) test -race -count=1 -timeout 20m ./...

run: build
	./$(BIN) serve

bench:
	bash bench/run.sh

bench-quick:
	bash bench/run.sh --quick

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# A short run of every fuzz target, FUZZTIME each: a time ("10s"; keep it at
# several seconds: on a busy machine the fuzzer can overrun a short deadline
# and report "context deadline exceeded") or a count of inputs ("3000x", what
# CI uses).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The long versions of the fault tests (thousands of messages, many kill -9s,
# floods) and a longer fuzz run of every target. Not part of CI.
SOAKFUZZTIME ?= 2m
soak:
	PIXELRELAY_SOAK=1 $(GO) test -race -count=1 -timeout 120m ./...
	$(MAKE) fuzz FUZZTIME=$(SOAKFUZZTIME)

clean:
	rm -f $(BIN)
