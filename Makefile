# sluice — the two commands a user needs are `make run` and `make test`.
# Everything else here is what those two are made of.
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
PORT  ?= 4000
HOST  ?= 127.0.0.1

.PHONY: all deps deps-test build build-asan run test unit unit-pg e2e e2e-asan unit-asan bench clean

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

build/Makefile: CMakeLists.txt
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: build/Makefile
	cmake --build build -j$(JOBS)

build-asan/Makefile: CMakeLists.txt
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON >/dev/null

build-asan: build-asan/Makefile
	cmake --build build-asan -j$(JOBS)

# Starts sluice on 127.0.0.1:4000 with the embedded demo config (a mock model, no network).
run: deps build
	build/sluice --port $(PORT) --host $(HOST)

unit: build
	cd build && ctest --output-on-failure

unit-asan: build-asan
	cd build-asan && ctest --output-on-failure

e2e: build
	cd tests/e2e && node --test --test-concurrency=1 *.test.mjs

e2e-asan: build-asan
	cd tests/e2e && SLUICE_BIN=$(CURDIR)/build-asan/sluice SLUICE_SANITIZED=1 \
	  node --test --test-concurrency=1 *.test.mjs

# The store's unit tests against a throwaway PostgreSQL (scripts/pg.sh starts and stops it).
unit-pg: build
	@d=$$(mktemp -d /tmp/sluice-pg.XXXXXX); url=$$(scripts/pg.sh start $$d $${PG_PORT:-55432}) || exit 1; \
	(cd build && SLUICE_TEST_PG_URL=$$url ctest --output-on-failure -R 'test_store|test_dburl'); rc=$$?; \
	scripts/pg.sh stop $$d; exit $$rc

# Every test: unit and e2e on the release build, then both again under ASan+UBSan.
test: deps-test
	$(MAKE) unit unit-pg e2e unit-asan e2e-asan
	$(MAKE) fuzz FUZZ_SECONDS=$(or $(TEST_FUZZ_SECONDS),5)

# libFuzzer harnesses (tests/fuzz/): clang + ASan/UBSan build in build-fuzz/, regressions
# replayed, then every harness fuzzed for FUZZ_SECONDS. Needs clang and libclang-rt-14-dev.
FUZZ_SECONDS ?= 10
.PHONY: fuzz
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) tests/fuzz/run.sh

bench: deps-test build
	bench/run.sh

clean:
	rm -rf build build-asan
