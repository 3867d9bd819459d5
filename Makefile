# The two README commands: `make demo` and `make test`. Each installs the
# Debian packages it needs (scripts/install-deps.sh), configures and builds.
PRESET ?= release
BUILD := build/$(PRESET)
DEMO_DIR ?=

.PHONY: deps configure build demo test test-tsan bench bench-quick fuzz clean

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build --preset $(PRESET)

demo: build
	$(BUILD)/tools/callvault demo $(if $(DEMO_DIR),--dir $(DEMO_DIR))

test: build
	ctest --preset $(PRESET)

# The concurrency tests under ThreadSanitizer.
test-tsan:
	@./scripts/install-deps.sh sanitizers
	@$(MAKE) --no-print-directory PRESET=tsan build
	ctest --preset tsan -L concurrency

bench: build
	./scripts/bench.sh full

bench-quick: build
	./scripts/bench.sh quick

# libFuzzer targets (clang, ASan + UBSan), FUZZ_RUNS executions each.
FUZZ_RUNS ?= 100000
fuzz:
	@./scripts/install-deps.sh sanitizers
	./scripts/fuzz.sh $(FUZZ_RUNS)

clean:
	rm -rf build
