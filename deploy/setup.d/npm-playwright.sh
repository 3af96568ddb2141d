#!/bin/sh
# deploy/setup.d/npm-playwright.sh — install playwright-core (no bundled browsers: the test drives
# Debian's chromium) into tests/browser/node_modules, pinned by tests/browser/package-lock.json,
# for the dashboard's browser test (tests/test-dash-browser.sh). Idempotent.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/deploy/npm-ci.sh"
# No browser download: playwright-core never fetches one; keep the variable set anyway.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm_ci npm-playwright "$top/tests/browser" playwright-core
