#!/usr/bin/env bash
# Rebuilds docs/results.md from the hand-written findings (docs/results/findings.md) and the
# committed store, so that every table on that page is what `ddray` prints for the store, and
# regenerates the report folder (CSVs, HTML, plots) beside it.
#   bash docs/results/build.sh            # after a run added rows to docs/results/fashion-mnist
set -euo pipefail
cd "$(dirname "$0")/../.."
DDRAY=${DDRAY:-.venv/bin/ddray}
STORE=docs/results/fashion-mnist

rm -rf "$STORE/report"  # no figure of an earlier layout left behind
"$DDRAY" report "$STORE" --out "$STORE/report" > /dev/null
{
  cat docs/results/findings.md
  printf '\n## Stored trials\n\n'
  printf 'Per stage, method (or the shared `rdm` / `full` arm) and IPC; wall times are per trial on\n'
  printf 'one core; a trial resumed from a checkpoint counts its last attempt only. Rendered by\n'
  printf '`ddray status %s --by-method --format md`.\n\n' "$STORE"
  "$DDRAY" status "$STORE" --by-method --format md
  printf '\n## The report\n\n'
  printf 'Rendered by `ddray report %s --format md`. The HTML version, the CSVs and\n' "$STORE"
  printf 'the plots are in `%s/report/`.\n\n' "$STORE"
  "$DDRAY" report "$STORE" --format md | sed -E 's/^(#+) /\1## /'
} > docs/results.md
echo "wrote docs/results.md"
