#!/bin/sh
# deploy/setup.d/npm-playwright.sh — install playwright-core (no bundled browsers: the test drives
# Debian's chromium) into tests/browser/node_modules, pinned by tests/browser/package-lock.json,
# for the dashboard's browser test (tests/test-dash-browser.sh). Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
dir="$top/tests/browser"
want=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' "$dir/package.json" | head -1)
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/playwright-core/package.json" 2>/dev/null | head -1)
if [ -n "$have" ] && [ "$have" = "$want" ]; then
    echo "npm-playwright: playwright-core $have already installed"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null ||
        { echo "npm-playwright: npm not found and apt-get install npm failed"; exit 1; }
fi
cd "$dir"
# No browser download: playwright-core never fetches one; keep the variable set anyway.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
[ -f "$dir/node_modules/playwright-core/package.json" ] || { echo "npm-playwright: install finished but playwright-core is missing"; exit 1; }
echo "npm-playwright: installed playwright-core $want"
