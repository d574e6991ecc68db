# Top-level entry points. `make demo` and `make test` are the README's quick
# start: both install missing Debian packages first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build build-asan build-variants demo test unit format format-check clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDROVER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# The build packagers make with CMake's Release, -Werror kept (-O3 warns
# about more than the developer build does): the four programs, no tests.
# Debian's dpkg-buildflags build (hardening on, as dh does) is the package
# test's own: `make package-test` builds the .debs with debhelper. The
# build-dpkg variant that repeated it left to keep CI within 20 minutes.
VARIANT_JOBS ?= 2
build-variants: deps
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DDROVER_TESTS=OFF >/dev/null
	@cmake --build build-release -j $(VARIANT_JOBS) --target droverd drover-agent drover drover-web

# CONTAINERS=1 runs the demo's steps in OCI containers.
demo: build
	@CONTAINERS=$(CONTAINERS) ./scripts/demo.sh $(BUILD)

# Everything CI runs: formatting, the Release and dpkg-buildflags builds,
# the normal build's tests (with the web console's in a headless browser),
# then the tests of the C again on the ASan/UBSan build (CMakeLists.txt,
# ASAN_SKIP), the fuzzing smoke run and the package test (about 2 minutes:
# it fits CI's 20-minute budget). The integration tests mostly wait (on real
# daemons, heartbeats, timeouts: ctest -j 2 kept about half a core busy;
# going from -j 3 to -j 4 made the normal pass 257 -> 200 s and its tests'
# summed time grow 3%), so ctest runs CTEST_JOBS of them at a time, two more
# than CI's two cores (ASAN_CTEST_JOBS, one more, for the ASan build, whose
# tests take 1.6 times as long: CPU); the long ones and the browser tests start first
# (COST, and shards: CMakeLists.txt, TEST_COSTS).
CTEST_JOBS ?= 4
ASAN_CTEST_JOBS ?= 3
test: format-check build-variants build build-asan
	@ctest --test-dir $(BUILD) --output-on-failure -j $(CTEST_JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(ASAN_CTEST_JOBS)
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory package-test

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check: deps
	@./scripts/check-format.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-pkgtest build-release build-dpkg

# --- fuzzing (fuzz/README.md): libFuzzer targets built with clang, ASan and
# UBSan in their own CMake project. `make fuzz` runs each target for
# FUZZ_SECONDS (two at a time on two cores), keeping its corpus in
# $(FUZZ_BUILD)/corpus; `make fuzz-smoke` (part of `make test`) runs each
# for FUZZ_SMOKE_SECONDS from the seeds in tests/fuzz. FUZZ_TARGETS picks.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 12
FUZZ_TARGETS ?= agents spec expr progress image cron token pools web

.PHONY: build-fuzz fuzz fuzz-smoke
build-fuzz: deps
	@cmake -S fuzz -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: build-fuzz
	@./scripts/fuzz.sh run $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: build-fuzz
	@./scripts/fuzz.sh smoke $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# Benchmarks against Slurm and Dask (bench/README.md): installs what they
# need, runs every workload on all three and writes bench/results/latest.*
# (about 15 minutes), then the long chaos run (bench/chaos.py: 1,000 steps
# under random kill -9 of droverd and agents; bench/results/chaos.json),
# and checkpoint commits of 200 MB saved every second (bench/checkpoint.py;
# bench/results/checkpoint.json).
# Not part of `make test`; BENCH_QUICK=1 for a short run.
.PHONY: bench
bench: build
	@BENCH_QUICK=$(BENCH_QUICK) python3 bench/bench.py --bin-dir $(BUILD)
	@python3 bench/chaos.py --bin-dir $(BUILD) $(if $(BENCH_QUICK),--steps 200 --kills 10)
	@python3 bench/checkpoint.py --bin-dir $(BUILD) $(if $(BENCH_QUICK),--saves 5)

# --- Debian packages (debian/, README "Installing the packages").
# `make deb` builds drover, droverd, drover-agent and drover-web into build/deb/;
# `make package-test` (tests/package/test-package.sh; part of `make test`;
# root; 1m42 on 2 cores with its cache in /var/cache/drover-pkgtest, about
# 3.5 minutes the first time) builds them once (and repacks them one version up for the
# upgrade), runs lintian and installs, runs,
# upgrades, removes and purges them in fresh debootstrapped bookworm roots.
.PHONY: deb package-test
deb: deps
	@./packaging/build-deb.sh build/deb

package-test: deps
	@./tests/package/test-package.sh
