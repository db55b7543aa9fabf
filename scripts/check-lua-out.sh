#!/usr/bin/env bash
# Fails when the committed lua-out/ differs from what src/ compiles to: oauth2-bridge.lua
# (tsconfig.json) and oauth2-check.lua (tsconfig.check.json).
set -euo pipefail
cd "$(dirname "$0")/.."

fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT

npx tstl -p tsconfig.json --outDir "$fresh"
npx tstl -p tsconfig.check.json --outDir "$fresh"
if ! diff -r -u lua-out "$fresh" > "$fresh.diff"; then
  head -n 40 "$fresh.diff" >&2
  rm -f "$fresh.diff"
  echo "lua-out/ does not match src/. Run 'make build' and commit lua-out/." >&2
  exit 1
fi
rm -f "$fresh.diff"
echo "lua-out/ matches src/"
