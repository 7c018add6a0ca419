#!/usr/bin/env bash
# The whole test suite, after the set-up it needs. CI runs exactly this (through `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Browser tests drive Debian's Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> Installing Chromium (Debian package) for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the browser tests need Chromium at /usr/bin/chromium (apt-get install chromium)" >&2
    exit 1
  fi
fi

# The backup test runs docs/operations.md's commands: the sqlite3 shell and pg_dump/pg_restore.
if ! command -v sqlite3 >/dev/null 2>&1 || ! command -v pg_dump >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> Installing sqlite3 and postgresql-client (Debian packages) for the backup test" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 postgresql-client >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 postgresql-client >/dev/null
  fi
fi

# The browser tests run axe-core (npm) in the page: installed once, pinned, into .tools/ (not committed).
AXE_VERSION=4.11.0
if [ ! -f .tools/node_modules/axe-core/axe.min.js ] || ! grep -q "\"version\": \"$AXE_VERSION\"" .tools/node_modules/axe-core/package.json; then
  echo "==> Installing axe-core $AXE_VERSION (npm) for the accessibility checks" >&2
  npm install --silent --no-audit --no-fund --prefix .tools "axe-core@$AXE_VERSION" >/dev/null
fi

exec .venv/bin/pytest "$@"
