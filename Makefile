# The two README commands: `make demo` and `make test`. Each installs the
# Debian packages it needs (scripts/install-deps.sh), configures and builds.
PRESET ?= release
BUILD := build/$(PRESET)
DEMO_DIR ?=

.PHONY: deps configure build demo test test-tsan t7-tsan t7-asan t7-tsan-build t7-asan-build sanitizer-builds bench bench-quick fuzz fuzz-corpus clean

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build --preset $(PRESET)

demo: build
	$(BUILD)/tools/callvault demo $(if $(DEMO_DIR),--dir $(DEMO_DIR))

# After the run, the counts each reliability suite printed (T1-T7), pass or fail.
test: build
	@ctest --preset $(PRESET); rc=$$?; ./scripts/suite-counts.sh $(BUILD) || true; exit $$rc

# The concurrency tests under ThreadSanitizer.
test-tsan:
	@./scripts/install-deps.sh sanitizers
	@$(MAKE) --no-print-directory PRESET=tsan build
	ctest --preset tsan -L concurrency

# T7 (testing.md): purge under load for T7_SECONDS (default 120) under
# ThreadSanitizer, and separately under AddressSanitizer + UBSan, as CI runs
# them. Each builds only what it runs: under TSan concurrency_test,
# metrics_test's concurrency case, the recording writer's and reader's
# threads (recording_test, recording_ingest_test's pipeline cases:
# decision 0072) and tsan_filter_test, which proves
# tests/crash/tsan_report_filter.cc reports a race of ours against RocksDB
# (build/tsan); under ASan + UBSan concurrency_test's code linked against the
# fuzz targets' instrumented engine (build/fuzz/fuzz/t7_asan_test: one
# instrumented engine build serves both, docs/decisions/0037).
T7_SECONDS ?= 120
t7-tsan: t7-tsan-build
	CALLVAULT_T7_SECONDS=$(T7_SECONDS) ctest --preset tsan -V -R '^(concurrency_test|tsan_filter_test|metrics_concurrency_test|recording_tsan_test|recording_pipeline_tsan_test)$$'

t7-asan: t7-asan-build
	CALLVAULT_T7_SECONDS=$(T7_SECONDS) build/fuzz/fuzz/t7_asan_test

t7-tsan-build:
	@./scripts/install-deps.sh sanitizers
	@cmake --preset tsan >/dev/null
	@cmake --build build/tsan -j2 --target concurrency_test tsan_filter_test metrics_test recording_test recording_ingest_test

# The fuzz targets and t7_asan_test: one build of the instrumented engine.
t7-asan-build:
	@./scripts/install-deps.sh sanitizers
	@FUZZ_BUILD_ONLY=1 FUZZ_BUILD_EXTRA=t7_asan_test ./scripts/fuzz.sh

# Everything the sanitizer parts of .ci/run build (the fuzz targets, T7 under
# TSan and under ASan + UBSan), without running it: .ci/run builds them at
# the lowest CPU priority while `make test` runs (docs/decisions/0037).
sanitizer-builds: t7-tsan-build t7-asan-build

bench: build
	./scripts/bench.sh full

bench-quick: build
	./scripts/bench.sh quick

# libFuzzer targets (clang, ASan + UBSan), FUZZ_RUNS executions each
# (api_fuzzer: FUZZ_API_RUNS). Each run's new inputs are merged, minimised,
# into build/fuzz/corpus/ for the next run; `make fuzz-corpus` merges them
# into fuzz/corpus/ to be committed (scripts/fuzz.sh says how).
FUZZ_RUNS ?= 100000
FUZZ_API_RUNS ?= $(FUZZ_RUNS)
fuzz:
	@./scripts/install-deps.sh sanitizers
	FUZZ_API_RUNS=$(FUZZ_API_RUNS) ./scripts/fuzz.sh $(FUZZ_RUNS)

fuzz-corpus:
	@./scripts/install-deps.sh sanitizers
	FUZZ_COMMIT_CORPUS=1 FUZZ_API_RUNS=$(FUZZ_API_RUNS) ./scripts/fuzz.sh $(FUZZ_RUNS)

clean:
	rm -rf build
