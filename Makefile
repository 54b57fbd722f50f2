# pixelrelay — see README.md
GO       ?= go
BIN      ?= pixelrelay
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X pixelrelay/cli.Version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build test run bench bench-quick lint fuzz soak clean networks

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# The whole suite, race detector on. Real-client tests need swaks and msmtp
# (Debian packages; .ci/run installs them).
test:
	@[ -n "$$PIXELRELAY_CORPUS" ] || [ -d ../shared/corpus ] || echo "note: no ../shared/corpus (nor PIXELRELAY_CORPUS): the corpus tests skip, saying why under go test -v"
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

# A short run of every fuzz target, FUZZTIME each: a count of inputs ("3000x",
# what CI uses) or a time ("10s"). A time can end in a spurious "context
# deadline exceeded" failure with no crasher: a race in Go 1.26's fuzzing
# coordinator (go.dev/issue/75804, fixed in Go 1.27); counts avoid it.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -timeout 60m $$pkg || exit 1; \
	  done; \
	done

# The long versions of the fault tests (thousands of messages, many kill -9s,
# floods) and a longer fuzz run of every target. Not part of CI.
SOAKFUZZTIME ?= 300000x
soak:
	PIXELRELAY_SOAK=1 $(GO) test -race -count=1 -timeout 120m ./...
	$(MAKE) fuzz FUZZTIME=$(SOAKFUZZTIME)

# Remake tracker/classify/networks.txt (the built-in machine networks) from
# the published lists. Needs internet access; not part of CI.
networks:
	$(GO) run ./tracker/classify/gen -o tracker/classify/networks.txt

clean:
	rm -f $(BIN)
