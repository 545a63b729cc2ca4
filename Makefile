# ltigrade: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go
BIN := bin/ltigrade
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/ltigrade/ltigrade/internal/cli.Version=$(VERSION)

.PHONY: build demo test test-go python-env fuzz bench gen lint clean

build:
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ltigrade

## demo: build and run the whole loop against the built-in LMS simulator
demo: build
	./$(BIN) demo

## python-env: the venv with the independent test doubles' packages (oauthlib)
python-env:
	bash scripts/python-env.sh >/dev/null

## test: every test, including the end-to-end ones against the Python LMS double
test: python-env
	$(GO) vet ./...
	LTIGRADE_PYTHON="$$(bash scripts/python-env.sh)" $(GO) test -count=1 ./...

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/nbgitpuller/
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/launch/
	$(GO) test -run=NONE -fuzz=FuzzParseResponse$$ -fuzztime=$(FUZZTIME) ./internal/lti11/
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/score/

## bench: the figures quoted in the issues (see docs/benchmarks.md)
bench: build
	$(GO) test -run=NONE -bench=. -benchtime=2000x ./internal/passback/
	bash scripts/bench-cli.sh

## gen: regenerate docs/reference, docs/man and completions
gen:
	$(GO) run ./cmd/ltigrade gen --docs docs --completions completions

clean:
	rm -rf bin dist
