#!/usr/bin/env bash
# hack/demo-down.sh - `make demo-down`: stop the demo's operator and the local environment.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
if pid=$(cat "$STATE/demo/operator.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
  kill "$pid" && echo "operator stopped"
fi
rm -f "$STATE/demo/operator.pid"
"$ROOT/tests/env/down.sh" "$STATE"
echo "environment stopped (state kept in $STATE; remove it with tests/env/down.sh $STATE --clean)"
