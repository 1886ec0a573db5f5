# shmbus -- build, test, install.
#   make              library (shared + static), CLI, examples, tests
#   make demo         the use-case demo (README's first command)
#   make test         the whole suite, plus ASan/UBSan and TSan runs (README's second command)
#                     (test programs link build/libshmbus-test.a: the library plus the
#                     kill-point hook, src/fault.h; never installed)
#   make bench        benchmarks against peer transports (scripts/bench.sh)
#   make soak         long mixed-workload run with kills (SOAK_SECONDS, default 1800)
#   make man          the man pages, from man/*.scd (needs scdoc; part of `all` when
#                     scdoc is installed) into BUILD/man/
#   make install      PREFIX (/usr/local), LIBDIR, INCLUDEDIR, BINDIR, MANDIR, DESTDIR
#                     (docs/install.md)
#   make deb          Debian packages into ../ (dpkg-buildpackage -b -us -uc; debian/)
#   make SAN=asan | SAN=tsan   sanitizer builds in build-asan/ and build-tsan/

CC      ?= gcc
PYTHON  ?= /usr/bin/python3
SAN     ?=

# Where `make install` puts things (each may be given on the command line;
# DESTDIR is prepended to all of them, for staging and packaging). LIBDIR
# stays PREFIX/lib unless given, e.g. LIBDIR=/usr/lib/x86_64-linux-gnu for
# Debian's multiarch layout.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR   ?= $(LIBDIR)/cmake/shmbus

# The version: the VERSION file is the one source. include/shmbus.h carries
# it as SHMBUS_VERSION_MAJOR/MINOR/PATCH, checked here, so a release that
# changes one and not the other does not build.
VERSION       := $(strip $(shell cat VERSION))
VERSION_PARTS := $(subst ., ,$(VERSION))
VERSION_MAJOR := $(word 1,$(VERSION_PARTS))
HEADER_VERSION := $(shell sed -n 's/^\#define SHMBUS_VERSION_\(MAJOR\|MINOR\|PATCH\) *\([0-9][0-9]*\)$$/\2/p' include/shmbus.h | paste -sd.)
ifneq ($(words $(VERSION_PARTS)),3)
$(error VERSION holds "$(VERSION)", not MAJOR.MINOR.PATCH)
endif
ifneq ($(VERSION),$(HEADER_VERSION))
$(error VERSION says $(VERSION) but include/shmbus.h's SHMBUS_VERSION_* say $(HEADER_VERSION); make them agree)
endif

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
# The shared library: real name libshmbus.so.X.Y.Z, soname libshmbus.so.X
# (the link a program records and the loader looks for), libshmbus.so for
# -lshmbus. Only the shmbus_* functions are exported (src/libshmbus.map);
# tests/test_abi.sh compares them with src/libshmbus.symbols.
SONAME   = libshmbus.so.$(VERSION_MAJOR)
SHARED   = $(BUILD)/libshmbus.so.$(VERSION)
LIBMAP   = src/libshmbus.map
TOOL_SRC = $(wildcard tools/*.c)
TEST_SRC = $(wildcard tests/test_*.c tests/multiproc/*.c tests/fault/*.c)
TEST_BIN = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
# C++ tests (tests/test_*.cpp, of include/shmbus.hpp) when a C++ compiler
# is installed; plain `make` needs none.
HAVE_CXX := $(shell command -v $(CXX) >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_CXX),1)
TEST_BIN += $(patsubst tests/%.cpp,$(BUILD)/tests/%,$(wildcard tests/test_*.cpp))
endif
CXXWARN  = -Wall -Wextra $(WERROR) -Wshadow -Wno-missing-field-initializers
EX_SRC   = $(wildcard examples/*/*.c)
EX_BIN   = $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))
# C++ examples (of include/shmbus.hpp), likewise only with a C++ compiler.
ifeq ($(HAVE_CXX),1)
EX_BIN  += $(patsubst examples/%.cpp,$(BUILD)/examples/%,$(wildcard examples/*/*.cpp))
endif

.PHONY: all lib tools tests examples demo test install uninstall clean bench soak model model-designs python check-header man deb

all: lib tools examples tests check-header

lib: $(STATIC) $(SHARED) $(BUILD)/$(SONAME) $(BUILD)/libshmbus.so
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

$(SHARED): $(LIB_OBJ) $(LIBMAP)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(LIBMAP) -Wl,-z,defs \
		$(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS)

$(BUILD)/$(SONAME): $(SHARED)
	ln -sf $(notdir $(SHARED)) $@

$(BUILD)/libshmbus.so: $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(BUILD)/shmbus: $(TOOL_SRC) $(STATIC) include/shmbus.h
	$(CC) $(ALLCFLAGS) -o $@ $(TOOL_SRC) $(STATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TSTATIC) tests/testutil.h tests/faultinject.h
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests -o $@ $< $(TSTATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.cpp $(TSTATIC) include/shmbus.hpp include/shmbus.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(CFLAGS) $(CXXWARN) $(SANFLAGS) -pthread -Iinclude -o $@ $< $(TSTATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC) $(wildcard examples/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.cpp $(STATIC) include/shmbus.hpp include/shmbus.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(CFLAGS) $(CXXWARN) $(SANFLAGS) -pthread -Iinclude -o $@ $< $(STATIC) $(LDFLAGS) $(LDLIBS)

# The public header must compile as C++ too (checked when a C++ compiler is
# installed; without one, everything else builds and this says so).
check-header: $(BUILD)/.header-ok
$(BUILD)/.header-ok: include/shmbus.h include/shmbus.hpp
	@mkdir -p $(BUILD)
	echo '#include "shmbus.h"' | $(CC) -x c -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only -
	@if command -v $(CXX) >/dev/null 2>&1; then \
		echo "echo '#include \"shmbus.h\"' | $(CXX) -x c++ -std=c++11 -Wall -Wextra -Wshadow -Werror -Iinclude -fsyntax-only -"; \
		echo '#include "shmbus.h"' | $(CXX) -x c++ -std=c++11 -Wall -Wextra -Wshadow -Werror -Iinclude -fsyntax-only - && \
		echo "echo '#include \"shmbus.hpp\"' | $(CXX) -x c++ -std=c++17 -Wall -Wextra -Wshadow -Werror -pedantic -Iinclude -fsyntax-only -" && \
		echo '#include "shmbus.hpp"' | $(CXX) -x c++ -std=c++17 -Wall -Wextra -Wshadow -Werror -pedantic -Iinclude -fsyntax-only - && \
		echo '#include "shmbus.hpp"' | $(CXX) -x c++ -std=c++20 -Wall -Wextra -Wshadow -Werror -pedantic -Iinclude -fsyntax-only - && touch $@; \
	else \
		echo "check-header: no C++ compiler ($(CXX)): the header's C++ check is skipped"; \
	fi

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

# Release check: the mixed-workload soak with kills, for half an hour.
soak: all
	SOAK_SECONDS=$${SOAK_SECONDS:-1800} bash tests/soak/run.sh

# The spin models: those of the code (the suite runs them), and with
# model-designs also those of designs not built yet (tests/model/run.sh).
model:
	bash tests/model/run.sh

model-designs:
	MODEL_DESIGNS=1 bash tests/model/run.sh

python: lib
	cd python && $(PYTHON) setup.py build_ext --inplace -q

# pkg-config and CMake files name the installed directories; libdir and
# includedir are written relative to prefix when under it.
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(PC_INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
	-e 's|@SIZEOF_POINTER@|$(shell echo __SIZEOF_POINTER__ | $(CC) -E -P -x c - | tail -n 1)|g' \
	-e 's|@CMAKE_TO_LIBDIR@|$(shell realpath -m --relative-to=$(CMAKEDIR) $(LIBDIR))|g' \
	-e 's|@CMAKE_TO_INCLUDEDIR@|$(shell realpath -m --relative-to=$(CMAKEDIR) $(INCLUDEDIR))|g'
# Man pages: man/NAME.SECTION.scd, one source each, kept with the code and
# turned into roff by scdoc. Plain `make` (and `make install`) work without
# scdoc: the pages are then neither built nor installed, and `make man`
# says why.
MAN_SRC  = $(wildcard man/*.scd)
MANPAGES = $(patsubst man/%.scd,$(BUILD)/man/%,$(MAN_SRC))
HAVE_SCDOC := $(shell command -v scdoc >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_SCDOC),1)
all: man
man: $(MANPAGES)
install: man
INSTALL_MAN = $(foreach s,$(sort $(subst .,,$(suffix $(MANPAGES)))),install -d $(DESTDIR)$(MANDIR)/man$(s) && \
	install -m 644 $(filter %.$(s),$(MANPAGES)) $(DESTDIR)$(MANDIR)/man$(s)/;)
else
man:
	@echo "make man: scdoc is not installed (Debian package scdoc, scripts/deps.sh); no man pages built" >&2; exit 1
INSTALL_MAN = @echo "install: scdoc is not installed: no man pages"
endif

$(BUILD)/man/%: man/%.scd
	@mkdir -p $(dir $@)
	scdoc <$< >$@.tmp && mv $@.tmp $@

install: lib tools
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR)
	install -m 644 include/shmbus.h include/shmbus.hpp $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmbus.so
	$(SUBST) shmbus.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/shmbus.pc
	$(SUBST) cmake/shmbus-config.cmake.in >$(DESTDIR)$(CMAKEDIR)/shmbus-config.cmake
	$(SUBST) cmake/shmbus-config-version.cmake.in >$(DESTDIR)$(CMAKEDIR)/shmbus-config-version.cmake
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/shmbus.pc $(DESTDIR)$(CMAKEDIR)/shmbus-config*.cmake
	install -m 755 $(BUILD)/shmbus $(DESTDIR)$(BINDIR)/
	$(if $(wildcard $(BUILD)/bridge/shmbus-bridge),install -m 755 $(BUILD)/bridge/shmbus-bridge $(DESTDIR)$(BINDIR)/)
	$(INSTALL_MAN)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmbus.h $(DESTDIR)$(INCLUDEDIR)/shmbus.hpp $(DESTDIR)$(LIBDIR)/libshmbus.* \
	      $(DESTDIR)$(PKGCONFIGDIR)/shmbus.pc $(DESTDIR)$(BINDIR)/shmbus $(DESTDIR)$(BINDIR)/shmbus-bridge \
	      $(DESTDIR)$(CMAKEDIR)/shmbus-config.cmake $(DESTDIR)$(CMAKEDIR)/shmbus-config-version.cmake \
	      $(addprefix $(DESTDIR)$(MANDIR)/,$(foreach m,$(MANPAGES),man$(subst .,,$(suffix $(m)))/$(notdir $(m))))
	-rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null

# The Debian packages (debian/, docs/install.md), built in place; the .debs
# land in the directory above. tests/test_debian.sh builds them from a copy.
deb:
	dpkg-buildpackage -b -us -uc

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
# the bridge is installed with the CLI when it is built
ifeq ($(HAVE_NATS),1)
install: bridge-bin
endif
