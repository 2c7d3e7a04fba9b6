# The two commands of the README: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
RELEASE := $(CARGO_TARGET_DIR)/debug/release

.PHONY: demo test bench tools build check-boundary

## Packer from Debian and moto[server] from PyPI, each only when missing.
tools:
	@scripts/install-tools

build:
	cargo build --workspace

## Runs every stage that exists against local AWS on 127.0.0.1:4566 (started, and reset, by this target).
demo: tools build
	@RELEASE=$(RELEASE) scripts/demo

## The whole test suite: unit, conformance (in-memory and emulator) and end-to-end tests of the binary, then the doc
## tests. With cargo-nextest (on every machine of this kind) the test binaries run side by side, TEST_THREADS tests
## at once: most of an end-to-end test is waiting on the emulator, a lease or a health check, so more tests than
## cores pays, and no binary waits for the slowest test of the one before it. Without nextest: plain cargo test.
## The output of every test is printed (at the end, with nextest): what the reliability suites count, faults
## injected, crash points, bad inputs, leaks, changes.
TEST_THREADS ?= 4
test: tools check-boundary
	@if cargo nextest --version >/dev/null 2>&1; then \
		rc=0; \
		cargo nextest run --workspace --no-fail-fast --test-threads $(TEST_THREADS) --success-output final --failure-output final || rc=$$?; \
		cargo test --workspace --doc || rc=$$?; \
		exit $$rc; \
	else \
		cargo test --workspace --no-fail-fast -- --nocapture; \
	fi

## release-core must never depend on the AWS SDK (also asserted by a test, from Cargo.lock).
check-boundary:
	@if cargo tree -p release-core -e normal,build,dev --prefix none | grep -q '^aws-'; then \
		echo "error: release-core depends on an aws crate; keep AWS in release-aws" >&2; exit 1; fi

## The benchmark (release build, its own emulator, the boto3 baseline): bench/results/, docs/PERFORMANCE.md.
bench:
	bench/run
