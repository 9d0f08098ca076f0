# relayguard - see README.md.
#   make            build build/relayguard
#   make run        install missing packages (as root), build, start on the embedded default config
#   make check      the same set-up, then every test, normal and under ASan+UBSan
#   make check-fresh  .ci/run in a pristine debootstrap'd Debian 12 (root)
#   make man        regenerate doc/relayguard.conf.5 from the parameter table
#   make bench      throughput and memory figures (bench/README.md)
#   make bench-probe  nmap's smtp-open-relay vs relayguard probe on real MTAs (root)
#   make bench-outbound  relaying to smtp-sink: relayguard vs Postfix, deferred queue (root)
#   make bench-abuse  cost of the rate limits and hijack checks, in-process and via Redis
#   make bench-metrics  what the Prometheus counters cost per message
#   make install    binary, manual pages, /etc/relayguard/main.cf, systemd unit (PREFIX, DESTDIR)
#   make uninstall  the same files again (queue, mail and a changed main.cf are kept)

CC      ?= cc
PKGS    := libevent libevent_pthreads libevent_openssl openssl libcares libpsl libxcrypt hiredis libcurl zlib libsystemd
# snprintf truncation into bounded reply/log buffers is deliberate, hence -Wno-format-truncation
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-truncation
BASE    := -std=c17 -D_GNU_SOURCE -Isrc -pthread
OPT     ?= -O2 -g
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# Every module (src/<concern>/*.c) goes into the library the tests link; the
# command line (src/cli/) only into the binary.
SRC_LIB := $(filter-out src/cli/%,$(sort $(wildcard src/*/*.c)))
SRC_BIN := $(sort $(wildcard src/cli/*.c))
UNIT    := $(basename $(sort $(wildcard tests/unit/test_*.c)))

# Two builds side by side: normal and sanitized.
B_NORM := build/normal
B_SAN  := build/asan
SAN    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all run check check-fresh deps deps-test bench bench-probe bench-outbound clean unit
all: build/relayguard

deps:
	@sh scripts/deps.sh build

deps-test:
	@sh scripts/deps.sh test

define objs
$(patsubst src/%.c,$(1)/%.o,$(SRC_LIB))
endef

$(B_NORM)/%.o: src/%.c $(wildcard src/*/*.h) $(wildcard src/*/*.def)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(WARN) $(OPT) $(PKG_CFLAGS) -c $< -o $@

$(B_SAN)/%.o: src/%.c $(wildcard src/*/*.h) $(wildcard src/*/*.def)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(WARN) -O1 -g $(SAN) $(PKG_CFLAGS) -c $< -o $@

build/relayguard: $(call objs,$(B_NORM)) $(patsubst src/%.c,$(B_NORM)/%.o,$(SRC_BIN))
	$(CC) $(BASE) $^ -o $@ $(PKG_LIBS)

build/relayguard-asan: $(call objs,$(B_SAN)) $(patsubst src/%.c,$(B_SAN)/%.o,$(SRC_BIN))
	$(CC) $(BASE) $(SAN) $^ -o $@ $(PKG_LIBS)

build/unit/%: tests/unit/%.c tests/unit/check.h tests/unit/files.h tests/unit/loopback.h $(call objs,$(B_NORM))
	@mkdir -p build/unit
	$(CC) $(BASE) $(WARN) $(OPT) -Itests/unit $(PKG_CFLAGS) $< $(call objs,$(B_NORM)) -o $@ $(PKG_LIBS)

build/unit-asan/%: tests/unit/%.c tests/unit/check.h tests/unit/files.h tests/unit/loopback.h $(call objs,$(B_SAN))
	@mkdir -p build/unit-asan
	$(CC) $(BASE) $(WARN) -O1 -g $(SAN) -Itests/unit $(PKG_CFLAGS) $< $(call objs,$(B_SAN)) -o $@ $(PKG_LIBS)

unit: $(patsubst tests/unit/%,build/unit/%,$(UNIT)) $(patsubst tests/unit/%,build/unit-asan/%,$(UNIT))

# Test drivers the integration tests run (tests/tools/*.c), normal and ASan.
TOOLS := $(notdir $(basename $(sort $(wildcard tests/tools/*.c))))
build/tools/%: tests/tools/%.c $(call objs,$(B_NORM))
	@mkdir -p build/tools
	$(CC) $(BASE) $(WARN) $(OPT) $(PKG_CFLAGS) $< $(call objs,$(B_NORM)) -o $@ $(PKG_LIBS)

build/tools-asan/%: tests/tools/%.c $(call objs,$(B_SAN))
	@mkdir -p build/tools-asan
	$(CC) $(BASE) $(WARN) -O1 -g $(SAN) $(PKG_CFLAGS) $< $(call objs,$(B_SAN)) -o $@ $(PKG_LIBS)

# The abuse-control benchmark (bench/abuse.sh).
build/bench-tools/abuse_bench: bench/abuse_bench.c $(call objs,$(B_NORM))
	@mkdir -p build/bench-tools
	$(CC) $(BASE) $(WARN) $(OPT) $(PKG_CFLAGS) $< $(call objs,$(B_NORM)) -o $@ $(PKG_LIBS)

.PHONY: bench-abuse
bench-abuse: deps build/relayguard
	@sh bench/abuse.sh

# The DKIM benchmark (bench/dkim.sh): signing cost, verification vs python3-dkim.
build/bench-tools/dkim_bench: bench/dkim_bench.c $(call objs,$(B_NORM))
	@mkdir -p build/bench-tools
	$(CC) $(BASE) $(WARN) $(OPT) $(PKG_CFLAGS) $< $(call objs,$(B_NORM)) -o $@ $(PKG_LIBS)

.PHONY: bench-dkim
bench-dkim: deps deps-test build/bench-tools/dkim_bench
	@sh bench/dkim.sh

# What the metrics cost per message (bench/metrics_bench.c).
build/bench-tools/metrics_bench: bench/metrics_bench.c $(call objs,$(B_NORM))
	@mkdir -p build/bench-tools
	$(CC) $(BASE) $(WARN) $(OPT) $(PKG_CFLAGS) $< $(call objs,$(B_NORM)) -o $@ $(PKG_LIBS)

.PHONY: bench-metrics
bench-metrics: deps build/bench-tools/metrics_bench
	@build/bench-tools/metrics_bench

.PHONY: tools
tools: $(patsubst %,build/tools/%,$(TOOLS)) $(patsubst %,build/tools-asan/%,$(TOOLS))

run: deps
	@$(MAKE) --no-print-directory build/relayguard
	./build/relayguard serve

# The builds for the tests, two compilers at a time (CI's machine has 2 cores)
# unless make was given -j itself.
check: deps deps-test
	@$(MAKE) --no-print-directory $(if $(findstring jobserver,$(MAKEFLAGS)),,-j2) \
		build/relayguard build/relayguard-asan unit tools
	@sh tests/run.sh

# .ci/run in a pristine debootstrap'd Debian 12 (root; scripts/check-fresh.sh):
# run it whenever scripts/deps.sh or what the tests need changes.
check-fresh:
	@sh scripts/check-fresh.sh

bench: deps deps-test build/relayguard
	@sh bench/run.sh

bench-probe: deps deps-test build/relayguard
	@sh bench/probe.sh

bench-outbound: deps deps-test build/relayguard
	@sh bench/outbound.sh

clean:
	rm -rf build

# relayguard.conf(5) is generated from src/config/params.def (test_manual.py
# fails when the checked-in page differs): run this after changing the table.
.PHONY: man
man: build/relayguard
	./build/relayguard config --man > doc/relayguard.conf.5

# make install|install-strip [PREFIX=/usr/local] [DESTDIR=...] [INSTALL_SENDMAIL=yes]
# The same binary make built: it knows it is installed by where it runs
# (not next to src/cli/main.c), and then defaults to /etc/relayguard/main.cf
# and /var/spool/relayguard, /var/mail/vhosts, /var/lib/relayguard.
# The unit goes to $(PREFIX)/lib/systemd/system: systemd reads both
# /usr/lib/systemd/system and /usr/local/lib/systemd/system, and a
# /usr/local install then stays under /usr/local (make uninstall removes it).
# main.cf is installed only when there is none (an administrator's file is
# never overwritten); uninstall removes it only if it is still the example.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SPOOLDIRS  ?= /var/spool/relayguard /var/mail/vhosts /var/lib/relayguard
# yes: also $(SENDMAIL_PATH) -> relayguard (the sendmail command cron and PHP call;
# off by default, and an existing sendmail that is not ours is never replaced)
INSTALL_SENDMAIL ?= no
SENDMAIL_PATH    ?= /usr/sbin/sendmail
# the binary to install (the tests install the ASan build this way too)
INSTALL_BIN ?= build/relayguard
MAN5 := $(wildcard doc/*.5)
MAN8 := $(wildcard doc/*.8)

# make install-strip: the same, with the binary's symbols and debug information
# stripped (install -s), as a package would ship it.
INSTALL_STRIP ?=

.PHONY: install install-strip uninstall
install-strip:
	$(MAKE) install INSTALL_STRIP=-s

install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/relayguard $(DESTDIR)$(UNITDIR)
	install -m 755 $(INSTALL_STRIP) $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/relayguard
	$(if $(MAN5),install -d $(DESTDIR)$(MANDIR)/man5 && install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/)
	$(if $(MAN8),install -d $(DESTDIR)$(MANDIR)/man8 && install -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/)
	install -m 644 etc/main.cf.example $(DESTDIR)$(SYSCONFDIR)/relayguard/main.cf.example
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/relayguard/main.cf ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/relayguard/main.cf (yours)"; \
	else install -m 644 etc/main.cf.example $(DESTDIR)$(SYSCONFDIR)/relayguard/main.cf; fi
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		etc/relayguard.service.in > $(DESTDIR)$(UNITDIR)/relayguard.service
	chmod 644 $(DESTDIR)$(UNITDIR)/relayguard.service
	for d in $(SPOOLDIRS); do install -d -m 755 $(DESTDIR)$$d; done
	$(if $(filter yes,$(INSTALL_SENDMAIL)),@sh -c 'set -e; l="$(DESTDIR)$(SENDMAIL_PATH)"; \
		if [ -e "$$l" ] && [ "$$(readlink "$$l")" != "$(SBINDIR)/relayguard" ]; then \
			echo "install: $$l exists and is not relayguard; not replaced" >&2; exit 1; fi; \
		mkdir -p "$$(dirname "$$l")"; ln -sfn "$(SBINDIR)/relayguard" "$$l"')
	@echo "installed; as root: useradd --system --no-create-home --shell /usr/sbin/nologin relayguard;"
	@echo "  systemctl daemon-reload && systemctl enable --now relayguard"

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relayguard $(DESTDIR)$(UNITDIR)/relayguard.service
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))
	@if [ -L $(DESTDIR)$(SENDMAIL_PATH) ] && \
	    [ "$$(readlink $(DESTDIR)$(SENDMAIL_PATH))" = "$(SBINDIR)/relayguard" ]; then \
		rm -f $(DESTDIR)$(SENDMAIL_PATH); fi
	@f=$(DESTDIR)$(SYSCONFDIR)/relayguard; \
	if cmp -s $$f/main.cf $$f/main.cf.example; then rm -f $$f/main.cf; \
	elif [ -e $$f/main.cf ]; then echo "kept $$f/main.cf (changed)"; fi; \
	rm -f $$f/main.cf.example; rmdir $$f 2>/dev/null || true
	@echo "queue and mail are kept: $(SPOOLDIRS)"

# Fuzzing (clang + libFuzzer, installed by deps.sh fuzz): make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := fuzz_address fuzz_config fuzz_queue fuzz_sasl fuzz_bounce fuzz_from fuzz_dmarc_record fuzz_authres fuzz_spf
# DKIM and the message header parser (msgauth/)
FUZZ_TARGETS += fuzz_dkim_tags fuzz_dkim_canon fuzz_msg_header fuzz_dkim_verify
FUZZ_FLAGS := -std=c17 -D_GNU_SOURCE -Isrc -pthread -g -O1 -fsanitize=fuzzer,address,undefined
.PHONY: fuzz
build/fuzz/%: tests/fuzz/%.c $(SRC_LIB) $(wildcard src/*/*.h)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) $(PKG_CFLAGS) $< $(SRC_LIB) -o $@ $(PKG_LIBS)

fuzz: deps
	@sh scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(patsubst %,build/fuzz/%,$(FUZZ_TARGETS))
	@$(MAKE) --no-print-directory fuzz-run

.PHONY: fuzz-run
fuzz-run:
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t; \
		echo "== $$t ($(FUZZ_SECONDS) s)"; \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
			build/fuzz/corpus-$$t tests/fuzz/seeds-$$t > build/fuzz/$$t.log 2>&1; \
		rc=$$?; tail -n 3 build/fuzz/$$t.log; \
		[ $$rc -eq 0 ] || { echo "$$t found a problem: see build/fuzz/$$t.log"; exit 1; }; \
	done
