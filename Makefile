# popgate build. `make` builds ./popgate; `make test` builds everything under
# ASan+UBSan and runs the unit and integration suites; `make demo` runs a
# throwaway stack on loopback. See README.md.

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
PKGS     := libev openssl hiredis inih
CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
INCLUDES := -I. -Iproxy -Ibackends -Itranslate
PKG_CFLAGS := $(shell pkg-config --cflags libcmocka openssl hiredis inih 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs openssl hiredis inih 2>/dev/null) -lev

OPT_CFLAGS  := -O2 -g
SAN_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

LIB_SRC  := $(sort $(wildcard translate/*.c backends/*.c proxy/*.c))
LIB_SRC  := $(filter-out proxy/main.c,$(LIB_SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

REL := build/release
SAN := build/asan

.PHONY: all test unit integration demo install clean bench fuzz deps
all: popgate

# Replace by rename: a running ./popgate (a demo, a benchmark) keeps its inode.
popgate: $(REL)/popgate
	cp $< $@.tmp && mv -f $@.tmp $@

# ---- object rules, one tree per flavour -------------------------------------
$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT_CFLAGS) $(INCLUDES) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(SAN)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(SAN_CFLAGS) $(INCLUDES) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

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
deps:
	@deploy/dev/install-deps.sh

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(SAN)/popgate
	POPGATE_BIN=$(CURDIR)/$(SAN)/popgate python3 -m pytest -q -p no:cacheprovider tests/integration

test: deps
	$(MAKE) unit
	$(MAKE) integration

demo: deps popgate
	python3 deploy/dev/demo.py

install: popgate
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/doc/popgate
	install -m 0755 popgate $(DESTDIR)$(PREFIX)/sbin/popgate
	install -m 0644 deploy/popgate.conf.example README.md $(DESTDIR)$(PREFIX)/share/doc/popgate/

clean:
	rm -rf build popgate

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- benchmarks: popgate beside its peers (bench/README.md) -----------------
# `make bench` takes ~15 minutes and rewrites bench/results.md, results.json and
# chart.png; `make bench-smoke` is the seconds-long version CI runs, written to
# build/bench-smoke so the committed results stay as they are.
.PHONY: bench-smoke
bench/pop3load: bench/pop3load.c
	$(CC) $(CSTD) $(WARN) $(OPT_CFLAGS) $(shell pkg-config --cflags openssl) $(CFLAGS) $< \
		$(shell pkg-config --libs openssl) -lev $(LDFLAGS) -o $@

bench: popgate bench/pop3load
	@bench/install-deps.sh
	python3 bench/run.py

bench-smoke: popgate bench/pop3load
	@bench/install-deps.sh
	python3 bench/run.py --smoke --out build/bench-smoke
