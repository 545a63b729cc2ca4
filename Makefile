# ltigrade: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go
BIN := bin/ltigrade
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/ltigrade/ltigrade/internal/cli.Version=$(VERSION)

.PHONY: build demo test test-go python-env fuzz bench bench-hub bench-batch bench-service bench-pg gen lint clean image deploy-values bench-doctor bench-metrics bench-submit bench-package package mutants

build:
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ltigrade

## demo: build and run the whole loop against the built-in LMS simulator
demo: build
	./$(BIN) demo

## python-env: the venv with the independent test doubles' packages (oauthlib)
python-env:
	bash scripts/python-env.sh >/dev/null

## test: every test, including the end-to-end ones against the Python LMS double
## and against a real JupyterHub (scripts/hub-env.sh: cached venv + npm proxy;
## exit 3 = PyPI/npm unreachable, then only internal/e2e skips), and against
## real nbgrader and otter-grader (scripts/grader-env.sh: cached venv; exit 3 =
## PyPI unreachable, then only the grader tests in internal/e2e skip), and the
## PostgreSQL store, its testscript pass and the multi-host test against a
## throwaway cluster on loopback (scripts/postgres-env.sh, stopped at the end;
## exit 3 = PostgreSQL cannot be installed, then only those tests skip), and in
## headless Chromium (scripts/browser-env.sh: Debian's chromium + playwright-core
## from npm; exit 3 = apt/npm unreachable or not root, then the browser tests skip)
HUB_ENV_FILE := $(CURDIR)/.cache/hub-env.out
GRADER_ENV_FILE := $(CURDIR)/.cache/grader-env.out
PG_ENV_FILE := $(CURDIR)/.cache/postgres-env.out
BROWSER_ENV_FILE := $(CURDIR)/.cache/browser-env.out
## The end-to-end package starts several real hubs one after another: it
## outlives go test's default 10-minute limit on a busy machine.
test: python-env
	$(GO) vet ./...
	@mkdir -p .cache; rc=0; bash scripts/hub-env.sh >$(HUB_ENV_FILE) || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo HUB_ENV_EXIT=3 >$(HUB_ENV_FILE); elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@rc=0; bash scripts/grader-env.sh >$(GRADER_ENV_FILE) || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo GRADER_ENV_EXIT=3 >$(GRADER_ENV_FILE); elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@rc=0; bash scripts/browser-env.sh >$(BROWSER_ENV_FILE) || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo BROWSER_ENV_EXIT=3 >$(BROWSER_ENV_FILE); elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@rc=0; bash scripts/postgres-env.sh >$(PG_ENV_FILE) || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo PG_ENV_EXIT=3 >$(PG_ENV_FILE); elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@rc=0; LTIGRADE_SANDBOX_TESTS=$$([ "$$(id -u)" = 0 ] && echo require) LTIGRADE_HUB_ENV_FILE="$(HUB_ENV_FILE)" LTIGRADE_GRADER_ENV_FILE="$(GRADER_ENV_FILE)" \
		LTIGRADE_BROWSER_ENV_FILE="$(BROWSER_ENV_FILE)" LTIGRADE_PG_ENV_FILE="$(PG_ENV_FILE)" \
		LTIGRADE_PYTHON="$$(bash scripts/python-env.sh)" $(GO) test -count=1 -timeout 60m ./... || rc=$$?; \
	bash scripts/postgres-env.sh stop; exit $$rc

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/nbgitpuller/
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/launch/
	$(GO) test -run=NONE -fuzz=FuzzParseResponse$$ -fuzztime=$(FUZZTIME) ./internal/lti11/
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/score/
	$(GO) test -run=NONE -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./internal/grader/otter/
	$(GO) test -run=NONE -fuzz=FuzzRead$$ -fuzztime=$(FUZZTIME) ./internal/batch/

## bench: the figures quoted in the issues (see docs/benchmarks.md)
bench: build bench-hub bench-batch bench-service
	$(GO) test -run=NONE -bench=. -benchtime=2000x ./internal/passback/
	GO="$(GO)" bash scripts/bench-cli.sh

## bench-pg: issue 11's figures on PostgreSQL and SQLite in one run (record and
## resolve on 1,000,000 launches, sync --now from 1 and 4 processes at 0 and
## 50 ms LMS latency, a 20,000-row score --batch); see docs/benchmarks.md
bench-pg: build
	@rc=0; env=$$(bash scripts/postgres-env.sh) || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "bench-pg: no PostgreSQL (scripts/postgres-env.sh exit $$rc)" >&2; exit $$rc; fi; \
	rc=0; GO="$(GO)" BENCH_PG_DSN="$$(printf "%s\n" "$$env" | sed -n "s/^LTIGRADE_TEST_PG_DSN=//p")" \
		BENCH_PGBOUNCER_DSN="$$(printf "%s\n" "$$env" | sed -n "s/^LTIGRADE_TEST_PGBOUNCER_DSN=//p")" bash scripts/bench-pg.sh || rc=$$?; \
	bash scripts/postgres-env.sh stop; exit $$rc

## bench-hub: hub login latency of an LTI launch with and without the hook (200 launches, 20 in flight)
bench-hub: build
	bash scripts/bench-hub.sh

## bench-batch: 1,000 scores to the LMS double (50 ms latency, then 0): Python lti one by one vs ltigrade score --batch
bench-batch: build
	GO="$(GO)" bash scripts/bench-batch.sh

## bench-submit: issue 10's figures (as root): submit-to-delivered latency of an otter notebook (20, median/p90), 30 students at once on W workers (drain time)
bench-submit: build
	GO="$(GO)" bash scripts/bench-submit.sh

## bench-service: remote score through `ltigrade serve` (200 calls, median/p99) and a 1,000-row batch through the service vs direct at 50 ms
bench-service: build
	GO="$(GO)" bash scripts/bench-service.sh

## bench-doctor: `ltigrade doctor` run time with and without --network (an HTTPS LMS simulator on loopback)
bench-doctor: build
	GO="$(GO)" bash scripts/bench-doctor.sh

## bench-metrics: one GET metrics over a 100,000-row outbox, SQLite and (scripts/postgres-env.sh) PostgreSQL
bench-metrics:
	@rc=0; env=$$(bash scripts/postgres-env.sh) || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "bench-metrics: no PostgreSQL (exit $$rc), SQLite only" >&2; env=; fi; \
	rc=0; LTIGRADE_TEST_PG_DSN="$$(printf "%s\n" "$$env" | sed -n "s/^LTIGRADE_TEST_PG_DSN=//p")" \
		$(GO) test -run=NONE -bench=Scrape -benchtime=50x ./internal/metrics/ || rc=$$?; \
	[ -z "$$env" ] || bash scripts/postgres-env.sh stop; exit $$rc

## package: .deb and .rpm for linux/amd64 (and arm64 when aarch64-linux-gnu-gcc
## is installed) into dist/, with nfpm (scripts/package.sh, docs/packaging.md)
package:
	GO="$(GO)" VERSION="$(VERSION)" bash scripts/package.sh

## bench-package: package sizes, and the time from a clean root with the .deb
## to a launch recorded through `ltigrade sandbox` (root only; docs/benchmarks.md)
bench-package:
	GO="$(GO)" VERSION="$(VERSION)" bash scripts/bench-package.sh

## image: ltigrade's container image (Dockerfile; needs a Docker or Podman engine)
IMAGE ?= ltigrade:$(VERSION)
image:
	docker build -t $(IMAGE) --build-arg VERSION=$(VERSION) .

## deploy-values: regenerate deploy/z2jh/hook-values.yaml from `ltigrade hub hook`
## (deploy/deploy_test.go fails while it is stale)
deploy-values:
	$(GO) test -count=1 -run TestHookValues ./deploy/ -update

## mutants: apply the outbox and engine mutants issue 11 names to a copy of HEAD;
## each must make the tests fail (the PostgreSQL ones run with a throwaway cluster)
mutants:
	@mkdir -p .cache; rc=0; bash scripts/postgres-env.sh >$(PG_ENV_FILE) || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "mutants: no PostgreSQL (scripts/postgres-env.sh exit $$rc); its mutants are not run" >&2; rm -f $(PG_ENV_FILE); fi; \
	rc=0; LTIGRADE_PG_ENV_FILE=$$([ -f $(PG_ENV_FILE) ] && echo $(PG_ENV_FILE)) $(GO) run ./scripts/mutants || rc=$$?; \
	bash scripts/postgres-env.sh stop; exit $$rc

## gen: regenerate docs/reference, docs/man and completions
gen:
	$(GO) run ./cmd/ltigrade gen --docs docs --completions completions

clean:
	rm -rf bin dist
