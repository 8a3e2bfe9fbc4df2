# place — one non-recursive Makefile.
#   make            build bin/place-api and bin/place-worker (-O2)
#   make asan       the same with ASan+UBSan into build/asan/bin/
#   make run        install what is missing, build, start services, run api+worker (Ctrl-C stops)
#   make up / down  the same stack in the background / stop it
#   make test       install, build, run every test (unit, integration, browser)
#   make test-asan  the whole test suite against the ASan+UBSan build
#   make bench      the performance table (tests/bench/README.md), JSON in tests/bench/results/
#   make fuzz       the libFuzzer targets (tests/fuzz/README.md), FUZZ_SECONDS each (default 60)
#   make clean

SHELL := /bin/bash
CC ?= gcc
PKGS := libmicrohttpd hiredis libpq librabbitmq libpng zlib openssl jansson inih

ifeq ($(SAN),1)
BUILD := build/asan
BINDIR := build/asan/bin
OPT := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD := build/release
BINDIR := bin
OPT := -O2
endif

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wwrite-strings -Wformat=2 -Wvla -Wpointer-arith -Wcast-align -Wundef -Werror
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lwslay
CFLAGS := -std=c17 -D_GNU_SOURCE -g $(OPT) $(WARN) -pthread -MMD -MP
CPPFLAGS = -Icommon $(PKG_CFLAGS)
comma := ,
LDFLAGS := -pthread $(if $(filter 1,$(SAN)),-fsanitize=address$(comma)undefined)

COMMON_SRC := $(wildcard common/*.c)
API_SRC := $(wildcard api/*.c)
WORKER_SRC := $(wildcard worker/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
API_OBJ := $(API_SRC:%.c=$(BUILD)/%.o)
WORKER_OBJ := $(WORKER_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
LIBCOMMON := $(BUILD)/libcommon.a

.PHONY: all asan clean deps run up down test test-asan unit headers cluster-up cluster-down bench bench-bins check fuzz fuzz-bins
all: $(BINDIR)/place-api $(BINDIR)/place-worker

asan:
	$(MAKE) SAN=1 all

Q := $(if $(V),,@)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# benchmarks (tests/bench/README.md): the WebSocket load generator (libc,
# OpenSSL, libpq for the sink-lag sampler), the image encoder bench (links the
# worker's own snapshot/timelapse objects) and the bare epoll reference writer
# (libc only)
LOADGEN := $(BUILD)/bench/loadgen
IMGBENCH := $(BUILD)/bench/imgbench
EPWRITER := $(BUILD)/bench/epwriter
bench-bins: $(LOADGEN) $(IMGBENCH) $(EPWRITER)
$(LOADGEN): tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(shell pkg-config --cflags --libs openssl libpq 2>/dev/null) -lm
IMGBENCH_WORKER := $(BUILD)/worker/snap.o $(BUILD)/worker/tl.o
$(IMGBENCH): tests/bench/imgbench.c $(IMGBENCH_WORKER) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) -Iworker $(CFLAGS) -Wno-missing-prototypes $< -o $@ $(IMGBENCH_WORKER) $(LIBCOMMON) $(PKG_LIBS) -lm $(LDFLAGS)
$(EPWRITER): tests/bench/epwriter.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS)

# fuzz targets (tests/fuzz/README.md): clang's libFuzzer with ASan+UBSan; the
# common code they drive is built again with coverage instrumentation
FUZZ_CC := clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -g -O1 $(WARN) -pthread $(FUZZ_SAN)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_COMMON_OBJ := $(COMMON_SRC:%.c=build/fuzz/%.o)
FUZZ_LIBCOMMON := build/fuzz/libcommon.a
fuzz-bins: $(FUZZ_BIN)
build/fuzz/common/%.o: common/%.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $< (fuzz)")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_LIBCOMMON): $(FUZZ_COMMON_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_LIBCOMMON) $(PKG_LIBS) -lm

$(LIBCOMMON): $(COMMON_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BINDIR)/place-api: $(API_OBJ) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(API_OBJ) $(LIBCOMMON) $(PKG_LIBS) -lm

$(BINDIR)/place-worker: $(WORKER_OBJ) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(WORKER_OBJ) $(LIBCOMMON) $(PKG_LIBS) -lm

$(BUILD)/tests/%: tests/unit/%.c $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes $< -o $@ $(LIBCOMMON) $(PKG_LIBS) -lcmocka -lm $(LDFLAGS)

unit-bins: $(UNIT_BIN)
.PHONY: unit-bins

# each header compiles on its own
headers:
	@for h in common/*.h api/*.h worker/*.h; do [ -e "$$h" ] || continue; \
	  echo "#include \"$$h\"" | $(CC) $(CPPFLAGS) -std=c17 -D_GNU_SOURCE $(WARN) -I. -x c -fsyntax-only - || exit 1; done

deps:
	@compose/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@compose/stack.sh run

up: deps
	@$(MAKE) --no-print-directory all
	@compose/stack.sh up

down:
	@compose/stack.sh down

cluster-up: deps
	@$(MAKE) --no-print-directory all
	@compose/stack.sh cluster-up

cluster-down:
	@compose/stack.sh cluster-down

test: deps
	@$(MAKE) --no-print-directory all unit-bins bench-bins fuzz-bins
	@tests/run.sh

test-asan: deps
	@$(MAKE) --no-print-directory SAN=1 all unit-bins bench-bins
	@$(MAKE) --no-print-directory fuzz-bins
	@PLACE_BIN=build/asan/bin PLACE_UNIT=build/asan/tests tests/run.sh

# every fuzz target for FUZZ_SECONDS (default 60) from its corpus
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-bins
	@tests/fuzz/run.sh $${FUZZ_SECONDS:-60}

# the performance table (tests/bench/README.md); release build only
bench: deps
	@$(MAKE) --no-print-directory all bench-bins
	@/usr/bin/python3 tests/bench/bench.py

check: test

clean:
	rm -rf build bin

-include $(COMMON_OBJ:.o=.d) $(API_OBJ:.o=.d) $(WORKER_OBJ:.o=.d)
-include $(LOADGEN).d $(IMGBENCH).d $(EPWRITER).d
-include $(FUZZ_COMMON_OBJ:.o=.d)
