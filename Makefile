# imagegate: the two commands are `make run` and `make test`; each installs what is missing.
BUILD      ?= build
BUILD_SAN  ?= build-asan
JOBS       ?= $(shell nproc)
LISTEN     ?= 127.0.0.1:8080
DATA       ?= ./data

.PHONY: all deps build run test test-fast test-asan unit e2e bench clean

all: build

deps:
	@./scripts/install-deps.sh
	@./scripts/install-node-deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/imagegate serve --listen $(LISTEN) --data $(DATA)

# The whole suite, then the whole suite again under ASan+UBSan.
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-asan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2

test-asan: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DIG_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  IG_TEST_TIMEOUT_MULTIPLIER=3 ctest --output-on-failure -j 2

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

bench: build
	@./scripts/install-deps.sh --bench
	./bench/run.sh

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
