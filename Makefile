# Build, test and install the Dovecot OAuth2 bridge.

PREFIX ?= /usr/local
DESTDIR ?=
SHAREDIR = $(DESTDIR)$(PREFIX)/share/dovecot-oauth2-bridge
LUA ?= lua5.4

SCRIPT = lua-out/oauth2-bridge.lua

.PHONY: all deps build typecheck check-lua-out unit integration test demo bench install uninstall clean

all: build

deps:
	scripts/install-deps.sh

build: deps
	npx tstl -p tsconfig.json

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

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

install:
	install -d $(SHAREDIR)
	install -m 0644 $(SCRIPT) $(SHAREDIR)/oauth2-bridge.lua
	install -m 0644 dovecot/*.conf* $(SHAREDIR)/
	install -m 0755 dovecot/oauth2-bridge-setup.sh $(SHAREDIR)/oauth2-bridge-setup.sh

uninstall:
	rm -rf $(SHAREDIR)

clean:
	rm -rf node_modules
