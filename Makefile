# Targets for people; CI runs .ci/run, which calls the README's test command.
GO ?= go
BIN := bin

.PHONY: all build test test-short demo lint fmt bench bench-quick bench-go compose-check chaos clean docs

all: lint test build

build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/worker ./cmd/enqueue ./cmd/intake ./cmd/sandbox

# The whole suite against a real Redis (redis-server from PATH, or REDIS_URL).
test:
	REQUIRE_REDIS=1 $(GO) test -race ./...

# Skips the long tests (12,000 dead letters, the SIGTERM restart, the browser).
test-short:
	$(GO) test -short ./...

demo:
	$(GO) run ./cmd/worker --demo --log-format console --log-level warn

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

# The worker against asynq with an empty handler and a hand-written handler
# on net/http and on fasthttp (and, as more contenders, the worker with
# WORKER_PREFETCH=10 and with UPSTREAM_HTTP_CLIENT=net/http), and enqueue
# file against a plain asynq client, in one run (12 to 16 minutes; run it
# with nothing else busy). Static binaries, as the Dockerfile builds them.
# Writes BENCHMARKS.md.
bench:
	CGO_ENABLED=0 $(GO) run ./bench -out BENCHMARKS.md -variant WORKER_PIPELINE=false -variant WORKER_PREFETCH=0 -variant UPSTREAM_HTTP_CLIENT=net/http

# The same with N = 2,000 and one repetition: checks that it works and that
# every task is processed exactly once (the test suite runs it too).
bench-quick:
	$(GO) run ./bench -quick

# Go micro-benchmarks (allocations per call and the like).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Validates docker-compose.yml without a Docker engine: production with the
# example settings, and the sandbox profile with none.
compose-check:
	docker-compose --env-file deploy/example.env -f docker-compose.yml config -q
	docker-compose -f docker-compose.yml --profile sandbox config -q
	docker-compose --env-file deploy/example.env -f docker-compose.yml --profile production --profile monitoring config -q

clean:
	rm -rf $(BIN)

# The fault scenarios (chaos/): the real binaries, a redis-server killed and
# restarted, the sandbox; exact counts, bounded in tasks and time.
chaos:
	CHAOS=1 $(GO) test -count=1 -timeout 9m -v ./chaos/

# Generated reference material (a test fails when it is stale).
docs:
	$(GO) run ./cmd/worker config --markdown > docs/configuration.md
