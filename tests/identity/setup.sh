#!/usr/bin/env bash
# Install the OpenID provider used by tests/identity (npm oidc-provider, pinned in package.json)
# into tests/identity/node_modules (git-ignored). Idempotent; called by .ci/run. Needs node + npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if command -v flock >/dev/null; then exec 9>".setup.lock"; flock 9; fi
want="$(node -p "require('./package.json').dependencies['oidc-provider']")"
have=""
if [ -f node_modules/oidc-provider/package.json ]; then
  have="$(node -p "require('./node_modules/oidc-provider/package.json').version")"
fi
if [ "$have" != "$want" ]; then
  npm ci --silent --no-audit --no-fund 2>&1 | grep -v 'Unknown user config' || true
fi
test -f node_modules/oidc-provider/package.json
echo "identity: oidc-provider@$want ready"
