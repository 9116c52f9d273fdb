#!/bin/sh
# Install the npm packages the end-to-end tests use, pinned by tests/e2e/package-lock.json.
set -eu
cd "$(dirname "$0")/../tests/e2e"
[ -f package.json ] || exit 0
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
