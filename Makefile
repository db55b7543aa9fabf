# Build, test and install the Dovecot OAuth2 bridge.

PREFIX ?= /usr/local
DESTDIR ?=
SHAREDIR = $(DESTDIR)$(PREFIX)/share/dovecot-oauth2-bridge
BINDIR = $(DESTDIR)$(PREFIX)/bin
LUA ?= lua5.4

SCRIPT = lua-out/oauth2-bridge.lua
CHECK_SCRIPT = lua-out/oauth2-check.lua
# Files that make install puts into SHAREDIR, and the wrapper in BINDIR.
SHARED_FILES = oauth2-bridge.lua oauth2-check.lua 10-oauth2-bridge.conf oauth2-bridge.conf.example oauth2-bridge-setup.sh
WRAPPER = oauth2-bridge-check

.PHONY: all deps build typecheck check-lua-out unit integration test demo bench soak install uninstall clean

all: build

deps:
	scripts/install-deps.sh

build: deps
	npx tstl -p tsconfig.json
	npx tstl -p tsconfig.check.json

typecheck: deps
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p tsconfig.check.json --noEmit

check-lua-out: deps
	scripts/check-lua-out.sh

unit: deps
	$(LUA) /usr/bin/busted

integration: deps
	node --test --test-concurrency=1 spec/integration/

test: typecheck check-lua-out unit integration

demo: deps
	node scripts/demo.mjs

bench: deps
	$(LUA) bench/accounts.lua
	node bench/run.mjs

soak: deps
	node bench/soak.mjs

# Copies the committed lua-out/, so it needs neither node nor npm. The snippet and the wrapper
# name the script's final path, $(PREFIX)/share/..., which DESTDIR does not change.
install:
	install -d $(SHAREDIR) $(BINDIR)
	install -m 0644 $(SCRIPT) $(SHAREDIR)/oauth2-bridge.lua
	install -m 0644 $(CHECK_SCRIPT) $(SHAREDIR)/oauth2-check.lua
	sed 's|/usr/local/share/dovecot-oauth2-bridge/|$(PREFIX)/share/dovecot-oauth2-bridge/|' \
	  dovecot/10-oauth2-bridge.conf > $(SHAREDIR)/10-oauth2-bridge.conf
	chmod 0644 $(SHAREDIR)/10-oauth2-bridge.conf
	install -m 0644 dovecot/oauth2-bridge.conf.example $(SHAREDIR)/oauth2-bridge.conf.example
	install -m 0755 dovecot/oauth2-bridge-setup.sh $(SHAREDIR)/oauth2-bridge-setup.sh
	printf '#!/bin/sh\n# Runs the check command of the Dovecot OAuth2 bridge; see --help.\nexec %s %s "$$@"\n' \
	  '$(LUA)' '$(PREFIX)/share/dovecot-oauth2-bridge/oauth2-check.lua' > $(BINDIR)/$(WRAPPER)
	chmod 0755 $(BINDIR)/$(WRAPPER)

# Removes the installed files and SHAREDIR. With DESTDIR, a staging tree that holds nothing
# else, it also removes the directories left empty up to DESTDIR; without it, standard
# directories such as /usr/local/bin stay.
uninstall:
	rm -f $(addprefix $(SHAREDIR)/,$(SHARED_FILES)) $(BINDIR)/$(WRAPPER)
	rmdir $(SHAREDIR) 2>/dev/null || true
	@if [ -n "$(DESTDIR)" ] && [ -d "$(DESTDIR)" ]; then \
	  stop=$$(cd "$(DESTDIR)" && pwd -P); \
	  for dir in "$(BINDIR)" "$(DESTDIR)$(PREFIX)/share"; do \
	    dir=$$(cd "$$dir" 2>/dev/null && pwd -P) || continue; \
	    while [ "$$dir" != "$$stop" ] && [ "$$dir" != / ] && rmdir "$$dir" 2>/dev/null; do \
	      dir=$$(dirname "$$dir"); \
	    done; \
	  done; \
	fi

clean:
	rm -rf node_modules
