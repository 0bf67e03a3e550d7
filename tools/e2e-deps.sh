#!/usr/bin/env bash
# Install what the browser end-to-end test (tests/e2e/) needs into the git-ignored .local/:
#   .local/viewer     OHIF Viewer 3 prebuilt (tools/get-viewer.sh --slim, @ohif/app@3.13.2)
#   .local/node       playwright-core (drives the Debian /usr/bin/chromium; no browser download)
#                     and axe-core (the portal test's accessibility check)
# Idempotent (under a second when installed). Needs node + npm; .ci/run also needs
# `apt-get install -y chromium nodejs npm`.
#   PLAYWRIGHT_VERSION  npm version of playwright-core (default 1.65.1)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"
AXE_VERSION="${AXE_VERSION:-4.14.1}"
NODE_DIR="$REPO/.local/node"
mkdir -p "$REPO/.local"
# parallel test workers (pytest -n) may call this at once: one installs, the others wait
if command -v flock >/dev/null; then exec 9>"$REPO/.local/.e2e-deps.lock"; flock 9; fi

"$REPO/tools/get-viewer.sh" --slim

installed=""
if [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ]; then
  installed="$(node -p "require('$NODE_DIR/node_modules/playwright-core/package.json').version")"
fi
if [ "$installed" = "$PLAYWRIGHT_VERSION" ]; then
  echo "e2e-deps: playwright-core@$PLAYWRIGHT_VERSION already in $NODE_DIR"
else
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"archive-e2e","private":true}' > "$NODE_DIR/package.json"
  echo "e2e-deps: npm install playwright-core@$PLAYWRIGHT_VERSION"
  (cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
      "playwright-core@$PLAYWRIGHT_VERSION" 2>&1 | grep -v 'Unknown user config' || true)
  test -f "$NODE_DIR/node_modules/playwright-core/package.json"
fi
if [ ! -f "$NODE_DIR/node_modules/axe-core/axe.min.js" ]; then
  echo "e2e-deps: npm install axe-core@$AXE_VERSION"
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund "axe-core@$AXE_VERSION" 2>&1 \
      | grep -v 'Unknown user config' || true)
  test -f "$NODE_DIR/node_modules/axe-core/axe.min.js"
fi
[ -x /usr/bin/chromium ] || echo "e2e-deps: WARNING /usr/bin/chromium missing (apt-get install -y chromium)" >&2
echo "e2e-deps: ready"
