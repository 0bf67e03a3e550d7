#!/usr/bin/env bash
# Called by .ci/run: install the browser test's npm parts (OHIF dist, playwright-core) into .local/.
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tools/e2e-deps.sh" "$@"
