# popgate build. `make` builds ./popgate; `make test` builds everything under
# ASan+UBSan and runs the unit and integration suites; `make demo` runs a
# throwaway stack on loopback. See README.md.

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
PKGS     := libev openssl hiredis inih
CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
# Layers, lowest first (README "How it is built"): each folder sees only its
# own headers and those of the layers below it, so an include that climbs a
# layer fails the build. admin/ sits beside proxy/ and shares its config
# loader; tests and benchmarks see everything.
INC_translate := -Itranslate
INC_io        := -Iio $(INC_translate)
INC_backends  := -Ibackends $(INC_io)
INC_proxy     := -Iproxy $(INC_backends)
INC_admin     := -Iadmin $(INC_proxy)
INC_tests     := $(INC_admin)
# The include path of the layer a source file belongs to (its first folder).
INCLUDES = $(INC_$(firstword $(subst /, ,$<)))
# One pkg-config call per need: a module it cannot find empties the whole
# answer, and cmocka (tests only) is no build dependency of the package.
# OAuth2 upstream login: libcurl (token endpoints, multi interface on libev),
# jansson (token responses), libargon2 (app passwords); -pthread for the
# slow-hash workers (io/work_pool.c).
PKG_CFLAGS := $(shell pkg-config --cflags openssl hiredis inih libcurl jansson libargon2 2>/dev/null) \
              $(shell pkg-config --cflags cmocka 2>/dev/null) -pthread
PKG_LIBS   := $(shell pkg-config --libs openssl hiredis inih libcurl jansson libargon2 2>/dev/null) -lev -pthread

OPT_CFLAGS  := -O2 -g
# The test builds (ASan, valgrind) carry the integration tests' hooks
# (io/test_hold.h); the release build never does.
TEST_HOOKS  := -DPOPGATE_TEST_HOOKS
SAN_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               $(TEST_HOOKS)

LIB_SRC  := $(sort $(wildcard translate/*.c io/*.c backends/*.c proxy/*.c))
LIB_SRC  := $(filter-out proxy/main.c,$(LIB_SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

REL := build/release
SAN := build/asan
VG  := build/valgrind

.PHONY: all test unit integration demo install clean bench fuzz deps deps-demo test-valgrind
all: popgate popgate-admin

# The release number lives in the file VERSION alone: the two files that print
# it (--version) get it as POPGATE_VERSION and are rebuilt when it changes;
# `make version` prints it for scripts; debian/changelog must name the same
# one (make deb checks).
VERSION := $(shell cat VERSION)
.PHONY: version
version:
	@echo $(VERSION)

# Debian's python3 has python3-pytest (deploy/dev/install-deps.sh); a python3
# earlier on PATH (pyenv and the like) may not.
PYTHON ?= $(shell command -v python3 >/dev/null 2>&1 && python3 -c 'import pytest' 2>/dev/null && echo python3 || echo /usr/bin/python3)

# Replace by rename: a running ./popgate (a demo, a benchmark) keeps its inode.
popgate: $(REL)/popgate
	cp $< $@.tmp && mv -f $@.tmp $@

# ---- object rules, one tree per flavour -------------------------------------
$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT_CFLAGS) $(INCLUDES) $(PKG_CFLAGS) $(VERSION_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(SAN)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(SAN_CFLAGS) $(INCLUDES) $(PKG_CFLAGS) $(VERSION_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# Only the objects that print the version see it (and depend on the file).
VERSIONED := $(foreach t,$(REL) $(SAN) $(VG),$(t)/proxy/main.o $(t)/admin/popgate-admin.o)
$(VERSIONED): VERSION
$(VERSIONED): VERSION_CFLAGS := -DPOPGATE_VERSION='"$(VERSION)"'

$(REL)/libpopgate.a: $(LIB_SRC:%.c=$(REL)/%.o)
	ar rcs $@ $^
$(SAN)/libpopgate.a: $(LIB_SRC:%.c=$(SAN)/%.o)
	ar rcs $@ $^

$(REL)/popgate: $(REL)/proxy/main.o $(REL)/libpopgate.a
	$(CC) $(OPT_CFLAGS) $^ $(PKG_LIBS) $(LDFLAGS) -o $@
$(SAN)/popgate: $(SAN)/proxy/main.o $(SAN)/libpopgate.a
	$(CC) $(SAN_CFLAGS) $^ $(PKG_LIBS) $(LDFLAGS) -o $@

$(SAN)/tests/unit/%: $(SAN)/tests/unit/%.o $(SAN)/libpopgate.a
	$(CC) $(SAN_CFLAGS) $^ $(PKG_LIBS) -lcmocka $(LDFLAGS) -o $@

UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(SAN)/tests/unit/%)

# ---- tests ------------------------------------------------------------------
# Install what is missing, never removing a package (deploy/dev/install-deps.sh):
# `deps` for the tests, fuzzing and valgrind; `deps-demo` only the demo's.
deps:
	@deploy/dev/install-deps.sh test
deps-demo:
	@deploy/dev/install-deps.sh demo

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(SAN)/popgate $(SAN)/popgate-admin popgate
	POPGATE_BIN=$(CURDIR)/$(SAN)/popgate POPGATE_RELEASE_BIN=$(CURDIR)/popgate \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The integration tests with popgate under valgrind memcheck (by hand: slow).
# A plain -O1 build (VG, above): valgrind and the sanitizers do not mix.
$(VG)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O1 -g $(TEST_HOOKS) $(INCLUDES) $(PKG_CFLAGS) $(VERSION_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
$(VG)/popgate: $(VG)/proxy/main.o $(LIB_SRC:%.c=$(VG)/%.o)
	$(CC) -g $^ $(PKG_LIBS) $(LDFLAGS) -o $@

test-valgrind: deps $(VG)/popgate $(SAN)/popgate-admin popgate
	POPGATE_BIN=$(CURDIR)/tests/valgrind/popgate.sh POPGATE_RELEASE_BIN=$(CURDIR)/popgate \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

test: deps
	$(MAKE) unit
	$(MAKE) integration

# The build runs in a sub-make, after the packages are in: pkg-config's flags
# are read when a make starts.
demo: deps-demo
	$(MAKE) popgate popgate-admin
	python3 deploy/dev/demo.py

install: popgate install-man install-admin
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/doc/popgate
	install -m 0755 popgate $(DESTDIR)$(PREFIX)/sbin/popgate
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 deploy/migration/pop3-uidl-export $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 deploy/popgate.conf.example README.md $(DESTDIR)$(PREFIX)/share/doc/popgate/

clean:
	rm -rf build dist popgate popgate-admin

# Compiler dependency files only: build/servers/ holds unpacked Debian
# packages (deploy/dev/servers/private_root.py) with directories like init.d.
-include $(shell find build -path build/servers -prune -o -name '*.d' -type f -print 2>/dev/null)

# ---- soak: endurance under faults (README "Soak run", tests/soak/) ----------
# `make soak` runs SOAK_MINUTES (default 10, at most 720) of mixed load on two
# release-build nodes behind HAProxy while Redis fails over, Dovecot restarts,
# nodes are reloaded and restarted and the upstream stalls; then checks the
# ledger and the resource lines (build/soak: report.txt, resources.png).
# `make soak-ci` is the one-minute version CI runs, after the ledger's own tests.
.PHONY: soak soak-ci
SOAK_MINUTES ?= 10
soak: deps popgate
	$(PYTHON) tests/soak/soak.py --minutes $(SOAK_MINUTES) --binary $(CURDIR)/popgate --out build/soak
soak-ci: popgate
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/soak/test_ledger.py
	$(PYTHON) tests/soak/soak.py --minutes 1 --binary $(CURDIR)/popgate --out build/soak-ci

# ---- benchmarks: popgate beside its peers (bench/README.md) -----------------
# `make bench` takes ~17 minutes and rewrites bench/results.md, results.json and
# chart.png; `make bench-smoke` is the seconds-long version CI runs, written to
# build/bench-smoke so the committed results stay as they are.
# `make bench-sizing` (minutes; ~4.5 GB of Redis) fills a throwaway Redis
# with device state for 100,000 users and rewrites bench/sizing.md.
.PHONY: bench-smoke bench-sizing
bench/pop3load: bench/pop3load.c
	$(CC) $(CSTD) $(WARN) $(OPT_CFLAGS) $(shell pkg-config --cflags openssl) $(CFLAGS) $< \
		$(shell pkg-config --libs openssl) -lev $(LDFLAGS) -o $@

bench: popgate bench/pop3load
	@bench/install-deps.sh
	python3 bench/run.py

bench-smoke: popgate bench/pop3load
	@bench/install-deps.sh
	python3 bench/run.py --smoke --out build/bench-smoke

# `make bench-login` (~3 minutes): login + UIDL on a 100,000-message mailbox,
# popgate beside Dovecot's own POP3, first, repeated and after new mail;
# rewrites bench/results-login.md and .json (issue 16, the listing cache).
.PHONY: bench-login
bench-login: popgate bench/pop3load
	@bench/install-deps.sh
	python3 bench/login.py

bench-sizing: popgate popgate-admin
	@bench/install-deps.sh
	python3 bench/sizing.py

# ---- fuzzing: libFuzzer targets for the parsers (tests/fuzz/README.md) ------
# Every tests/fuzz/*.c is one target, linked against the library built again
# with clang and the fuzzer's coverage instrumentation (the gcc objects above
# have none). `make fuzz FUZZ_SECONDS=60` runs each target in turn for that
# long from a copy of its seed corpus, so the inputs it finds stay out of the
# tree; `make fuzz-ci` runs each for 30 s. A crash stops the run and leaves its
# input in build/fuzz/artifacts/.
.PHONY: fuzz-ci fuzz-build fuzz-run
FUZZ_CC      := clang
FUZZ_SECONDS ?= 60
FUZZ         := build/fuzz
FUZZ_SAN     := -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_TARGETS := $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/*.c)))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ)/%)
# A slow input is a bug too (a parser loop that never ends): 10 s is far above
# any input's run time and far below libFuzzer's default of 20 minutes.
FUZZ_FLAGS   := -timeout=10 -print_final_stats=1

$(FUZZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link,address,undefined \
		$(INCLUDES) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# The parsers, and the few proxy/ files the config loader needs (the rest is
# the event loop, which no target reaches).
FUZZ_LIB_SRC := $(filter translate/% io/% backends/%,$(LIB_SRC)) proxy/config.c proxy/config_value.c proxy/mapping.c proxy/mapping_oauth.c

$(FUZZ)/libpopgate.a: $(FUZZ_LIB_SRC:%.c=$(FUZZ)/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ)/%: $(FUZZ)/obj/tests/fuzz/%.o $(FUZZ)/libpopgate.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer,address,undefined $^ $(PKG_LIBS) -o $@

fuzz-build: $(FUZZ_BINS)

# clang and libclang-rt-14-dev come from deploy/dev/install-deps.sh.
fuzz: deps
	$(MAKE) fuzz-build
	$(MAKE) fuzz-run

fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=30

fuzz-run: fuzz-build
	@set -e; mkdir -p $(FUZZ)/artifacts; \
	for t in $(FUZZ_TARGETS); do \
		work=$$(mktemp -d); \
		cp tests/fuzz/corpus/$$t/* "$$work"/; \
		dict=; if [ -f tests/fuzz/$$t.dict ]; then dict=-dict=tests/fuzz/$$t.dict; fi; \
		echo "== $$t: $(FUZZ_SECONDS) s"; \
		if ! $(FUZZ)/$$t $(FUZZ_FLAGS) $$dict -max_total_time=$(FUZZ_SECONDS) \
				-artifact_prefix=$(FUZZ)/artifacts/$$t- "$$work"; then \
			rm -rf "$$work"; exit 1; \
		fi; \
		rm -rf "$$work"; \
	done

# ---- popgate-admin and the manual pages -------------------------------------
# popgate-admin (admin/*.c) links the same library as popgate: the config
# loader, view_policy_set, the device key names and login name folding.
# install-man installs the pages of deploy/man/; install-admin the program
# (sbin, beside popgate); install also puts the migration tool
# pop3-uidl-export (deploy/migration/) in bin.
.PHONY: install-man install-admin
ADMIN_SRC := $(sort $(wildcard admin/*.c))
MAN5      := deploy/man/popgate.conf.5
MAN8      := deploy/man/popgate.8 deploy/man/popgate-admin.8
MAN1      := deploy/man/pop3-uidl-export.1

popgate-admin: $(REL)/popgate-admin
	cp $< $@.tmp && mv -f $@.tmp $@

$(REL)/popgate-admin: $(ADMIN_SRC:%.c=$(REL)/%.o) $(REL)/libpopgate.a
	$(CC) $(OPT_CFLAGS) $^ $(PKG_LIBS) $(LDFLAGS) -o $@
$(SAN)/popgate-admin: $(ADMIN_SRC:%.c=$(SAN)/%.o) $(SAN)/libpopgate.a
	$(CC) $(SAN_CFLAGS) $^ $(PKG_LIBS) $(LDFLAGS) -o $@

install-man:
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(PREFIX)/share/man/man8/

install-admin: popgate-admin
	install -d $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 popgate-admin $(DESTDIR)$(PREFIX)/sbin/popgate-admin

# ---- the Debian package (debian/, README "Install from the package") --------
# `make deb` installs debhelper and lintian if missing (install-deps.sh deb),
# builds dist/popgate_<version>_<arch>.deb with dpkg-buildpackage and checks
# it with lintian (no error, no warning). The build runs in a copy of the
# tree under build/deb/: dpkg-buildpackage writes into debian/ and its
# results beside the tree, and neither should touch the checkout; the
# package's objects are its own (debian/rules), never build/release or
# build/asan. The version is VERSION's: debian/changelog must agree.
.PHONY: deb deps-deb deb-build
DEB_WORK := build/deb
DEB_SRC  := $(DEB_WORK)/popgate-$(VERSION)

deps-deb:
	@deploy/dev/install-deps.sh deb

deb: deps-deb
	$(MAKE) deb-build

deb-build:
	@changelog=$$(dpkg-parsechangelog -S Version); \
	if [ "$$changelog" != "$(VERSION)" ]; then \
		echo "make deb: debian/changelog is at $$changelog, VERSION at $(VERSION):" \
		     "add a changelog entry (dch -v $(VERSION))" >&2; exit 1; fi
	rm -rf $(DEB_WORK)
	mkdir -p $(DEB_SRC) dist
	tar -cf - --exclude=./.git --exclude=./build --exclude=./dist --exclude=./popgate \
		--exclude=./popgate-admin --exclude=./bench/pop3load --exclude=__pycache__ . \
		| tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b -J2
	rm -f dist/popgate_*.deb dist/popgate-dbgsym_* dist/popgate_*.buildinfo dist/popgate_*.changes
	mv $(DEB_WORK)/popgate_$(VERSION)_* $(DEB_WORK)/popgate-dbgsym_$(VERSION)_* dist/
	lintian --fail-on error,warning --info dist/popgate_$(VERSION)_*.changes
	@ls dist/popgate_$(VERSION)_*.deb
