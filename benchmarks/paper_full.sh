#!/usr/bin/env bash
# The paper's tables on whole images (profile `paper`), one table at a time in order of cost, on
# the CPU. Finished fits go to benchmarks/paper_tables_full.jsonl (commit it as it grows): a later
# run, here or on another machine, resumes from it and refits nothing. Reports go to $OUT.
#
#   nice -n 10 benchmarks/paper_full.sh               # every table: LINR, defaults, fast, classical
#   TABLES="3 2" THREADS=2 benchmarks/paper_full.sh   # some tables
#   EXCLUDE="dip dip_recipe linr_default linr_fast" benchmarks/paper_full.sh   # the paper column
#
# DIP is left out by default (hours per image on a CPU); EXCLUDE="" brings it in.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench_out/paper_full}
JOBS=${JOBS:-benchmarks/paper_tables_full.jsonl}
THREADS=${THREADS:-1}
TABLES=${TABLES:-"3 2 5 8 7 10 13 12 1 6 9 4 11"}
EXCLUDE=${EXCLUDE-"dip dip_recipe"}
for t in $TABLES; do
  echo "== table $t $(date -u +%H:%M:%S)" >&2
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$THREADS "$PY" -m linr bench --profile paper --tables "$t" --threads "$THREADS" \
    --jobs "$JOBS" --out "$OUT/table$t" ${EXCLUDE:+--exclude $EXCLUDE} \
    || echo "table $t: failed (exit $?)" >&2
done
