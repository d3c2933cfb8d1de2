# vitbench. `make run` and `make test` each do the whole set-up first on a
# fresh Debian bookworm machine (packages, gotch build copy, ECharts asset).
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
SUITE ?= experiments/all.toml

.PHONY: all setup build run smoke quick test bench report-check clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build ./...

# The main job: the full suite, its database and its report.
run: setup
	$(GO) run ./cmd/bench $(SUITE)

smoke: setup
	$(GO) run ./cmd/bench experiments/smoke.toml

quick: setup
	$(GO) run ./cmd/bench experiments/quick.toml

# The cluster test runs on a one-node Slurm cluster started here and
# stopped after the tests, whatever they return.
SLURM_DIR ?= /tmp/vitbench-slurm
test: setup
	$(GO) vet ./...
	VITBENCH_SLURM_DIR=$(SLURM_DIR) bash scripts/slurm-local.sh start
	SLURM_CONF=$(SLURM_DIR)/slurm.conf $(GO) test -count=1 -timeout 45m ./...; \
	  status=$$?; VITBENCH_SLURM_DIR=$(SLURM_DIR) bash scripts/slurm-local.sh stop; exit $$status

# Speed and memory targets are benchmarks, not timed tests.
bench: setup
	bash scripts/bench.sh

# Load every page of a written report in headless Chromium (charts drawn,
# no network request) and screenshot it to results/report-screenshots/.
SITE ?= results/report
report-check: setup
	VITBENCH_REPORT_SITE=$(abspath $(SITE)) $(GO) test -count=1 -run '^TestBrowser$$' -v ./reports

clean:
	rm -rf results .cache/artifacts
