# shmbus -- build, test, install.
#   make              library (shared + static), CLI, examples, tests
#   make demo         the use-case demo (README's first command)
#   make test         the whole suite, plus ASan/UBSan and TSan runs (README's second command)
#                     (test programs link build/libshmbus-test.a: the library plus the
#                     kill-point hook, src/fault.h; never installed)
#   make bench        benchmarks against peer transports (scripts/bench.sh)
#   make soak         long mixed-workload run with kills (SOAK_SECONDS, default 1800)
#   make install PREFIX=/usr/local
#   make SAN=asan | SAN=tsan   sanitizer builds in build-asan/ and build-tsan/

CC      ?= gcc
PREFIX  ?= /usr/local
PYTHON  ?= /usr/bin/python3
SAN     ?=

ifeq ($(SAN),asan)
BUILD   ?= build-asan
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT      = -O1
else ifeq ($(SAN),tsan)
BUILD   ?= build-tsan
SANFLAGS = -fsanitize=thread
# TSan does not model fences; seqlock copies are relaxed atomics under TSan
# (sb_racy_copy), so the fence-ordered protocol shows no data race to it.
TSANWARN = -Wno-tsan
OPT      = -O1
else
BUILD   ?= build
SANFLAGS =
OPT      = -O2
endif

WERROR  ?= -Werror
WARN     = -Wall -Wextra $(WERROR) -Wshadow -Wno-missing-field-initializers $(TSANWARN)
CFLAGS  ?= $(OPT) -g
ALLCFLAGS = -std=gnu11 -D_GNU_SOURCE $(CFLAGS) $(WARN) $(SANFLAGS) -fPIC -pthread -Iinclude -Isrc
LDFLAGS += $(SANFLAGS) -pthread
LDLIBS  += -lrt -lm

LIB_SRC  = $(filter-out src/fault.c,$(wildcard src/*.c))
LIB_OBJ  = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
STATIC   = $(BUILD)/libshmbus.a
# The test library: the same sources plus src/fault.c, built with the
# kill-point hook (SB_STEP, src/fault.h). Only tests/ link against it;
# libshmbus.a/.so and `make install` never contain the hook.
TLIB_OBJ = $(LIB_OBJ:$(BUILD)/obj/%.o=$(BUILD)/tobj/%.o) $(BUILD)/tobj/fault.o
TSTATIC  = $(BUILD)/libshmbus-test.a
SHARED   = $(BUILD)/libshmbus.so.0
TOOL_SRC = $(wildcard tools/*.c)
TEST_SRC = $(wildcard tests/test_*.c tests/multiproc/*.c tests/fault/*.c)
TEST_BIN = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
EX_SRC   = $(wildcard examples/*/*.c)
EX_BIN   = $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))

.PHONY: all lib tools tests examples demo test install uninstall clean bench soak python check-header

all: lib tools examples tests check-header

lib: $(STATIC) $(SHARED) $(BUILD)/shmbus.pc
tools: $(if $(TOOL_SRC),$(BUILD)/shmbus)
tests: $(TEST_BIN)
examples: $(EX_BIN)

$(BUILD)/obj/%.o: src/%.c src/internal.h include/shmbus.h $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/tobj/%.o: src/%.c src/internal.h include/shmbus.h $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -DSHMBUS_FAULT_INJECT -c $< -o $@

$(TSTATIC): $(TLIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libshmbus.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf libshmbus.so.0 $(BUILD)/libshmbus.so

$(BUILD)/shmbus.pc: shmbus.pc.in
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|' $< > $@

$(BUILD)/shmbus: $(TOOL_SRC) $(STATIC) include/shmbus.h
	$(CC) $(ALLCFLAGS) -o $@ $(TOOL_SRC) $(STATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TSTATIC) tests/testutil.h tests/faultinject.h
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests -o $@ $< $(TSTATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC) $(wildcard examples/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(LDLIBS)

# The public header must compile as C++ too.
check-header: $(BUILD)/.header-ok
$(BUILD)/.header-ok: include/shmbus.h
	@mkdir -p $(BUILD)
	echo '#include "shmbus.h"' | g++ -x c++ -std=c++11 -Wall -Wextra -Werror -Iinclude -fsyntax-only -
	echo '#include "shmbus.h"' | $(CC) -x c -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only -
	@touch $@

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

# Release check: the mixed-workload soak with kills, for half an hour.
soak: all
	SOAK_SECONDS=$${SOAK_SECONDS:-1800} bash tests/soak/run.sh

python: lib
	cd python && $(PYTHON) setup.py build_ext --inplace -q

install: lib tools
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/shmbus.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libshmbus.so.0 $(DESTDIR)$(PREFIX)/lib/libshmbus.so
	install -m 644 $(BUILD)/shmbus.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/shmbus $(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/shmbus.h $(DESTDIR)$(PREFIX)/lib/libshmbus.* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/shmbus.pc $(DESTDIR)$(PREFIX)/bin/shmbus

clean:
	rm -rf build build-asan build-tsan python/build python/*.so

# --- bridge (owned by bridge engineer) ---
# shmbus-bridge (bridge/*.c) and its test and benchmark helpers
# (tests/bridge/*.c, bench/bridge/*.c), built only when libnats is present.
HAVE_NATS := $(shell pkg-config --exists libnats 2>/dev/null && echo 1 || { test -f /usr/include/nats/nats.h && echo 1; })
ifeq ($(HAVE_NATS),1)
NATS_CFLAGS := $(shell pkg-config --cflags libnats 2>/dev/null)
NATS_LIBS   := $(or $(shell pkg-config --libs libnats 2>/dev/null),-lnats)
BRIDGE_SRC   = $(wildcard bridge/*.c)
BRIDGE_AUX   = $(patsubst tests/bridge/%.c,$(BUILD)/bridge/%,$(wildcard tests/bridge/*.c)) \
               $(patsubst bench/bridge/%.c,$(BUILD)/bridge/%,$(wildcard bench/bridge/*.c))
.PHONY: bridge-bin
all: bridge-bin
bridge-bin: $(BUILD)/bridge/shmbus-bridge $(BRIDGE_AUX)
$(BUILD)/bridge/shmbus-bridge: $(BRIDGE_SRC) bridge/bridge.h $(STATIC) include/shmbus.h
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(NATS_CFLAGS) -o $@ $(BRIDGE_SRC) $(STATIC) $(LDFLAGS) $(NATS_LIBS) $(LDLIBS)
$(BUILD)/bridge/%: tests/bridge/%.c $(STATIC) include/shmbus.h
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(NATS_CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(NATS_LIBS) $(LDLIBS)
$(BUILD)/bridge/%: bench/bridge/%.c $(STATIC) include/shmbus.h
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(NATS_CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(NATS_LIBS) $(LDLIBS)
endif
# --- end bridge ---
