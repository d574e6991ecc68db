# Top-level entry points. `make demo` and `make test` are the README's quick
# start: both install missing Debian packages first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build build-asan demo test unit format format-check clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDROVER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# CONTAINERS=1 runs the demo's steps in OCI containers.
demo: build
	@CONTAINERS=$(CONTAINERS) ./scripts/demo.sh $(BUILD)

# Everything CI runs: formatting, the normal build's tests, then the same
# tests again on the ASan/UBSan build.
test: format-check build build-asan
	@ctest --test-dir $(BUILD) --output-on-failure -j 2
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j 2

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check: deps
	@./scripts/check-format.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# Benchmarks against Slurm and Dask (bench/README.md): installs what they
# need, runs every workload on all three and writes bench/results/latest.*
# (about 15 minutes). Not part of `make test`; BENCH_QUICK=1 for a short run.
.PHONY: bench
bench: build
	@BENCH_QUICK=$(BENCH_QUICK) python3 bench/bench.py --bin-dir $(BUILD)
