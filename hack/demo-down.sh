#!/usr/bin/env bash
# hack/demo-down.sh - `make demo-down`: stop the local environment, the demo's pods with it (the
# Helm release stays recorded: `make demo` again brings everything back).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
"$ROOT/tests/env/down.sh" "$STATE"
echo "environment stopped (state kept in $STATE; remove it with tests/env/down.sh $STATE --clean)"
