#!/usr/bin/env bash
# One prepared GPU run (issue: full-size truth), meant for a lent H200 and sized for its budget:
# within BUDGET seconds of wall time (default 540 = 9 min) it runs, in this order, each under a
# time guard, writing everything to $OUT (at most 8 files):
#   1. machine.txt  GPU, driver, torch, CUDA
#   2. tests.log    the CUDA tests (tests/test_cuda.py) and the engine tests on this machine
#   3. speed.log    (first) benchmarks/tiles_scale.py: 512x512 and 2048x2048 noisy photos in stacked
#                   tiles, time per pixel and peak memory
#   3b. speed.log, speed.json   linr bench speed --device cuda at 256x256: float32, tf32, bf16,
#                              the fast preset and 8 images stacked
#   3c. paper.log  #15: the four whole Table 4 images fitted (4000 steps) and refined by
#                  grouped-deblur (benchmarks/deblur_refine.py prints one row per image)
#   4. jobs.jsonl, report.md   the paper profile (full images, LINR and the defaults/fast
#                              columns and the classical methods; no DIP) table by table in the
#                              order: the tables the first lease left (1 6 9 4 11), then the
#                              others (3 2 5 8 7 10 13 12: finished, so reported from the
#                              committed fits in seconds) until time runs out;
#                              every finished fit is in jobs.jsonl (resumable with --jobs;
#                              it starts as a copy of RESUME_FROM, the committed fits of the
#                              earlier GPU run, so only unfinished tables are fitted)
#   5. log.txt      each part's exit status and seconds
#
#   OUT=gpu_out DATA=../shared/data benchmarks/gpu_run.sh
#   benchmarks/gpu_run.sh --dry-run     # the same parts on the CPU, tiny crops, a few steps
#
# The data folder must travel with the working tree on a lent machine: copy ../shared/data into
# an ignored folder (e.g. .gpudata, listed in .git/info/exclude) and pass DATA=.gpudata.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-gpu_out}
DATA=${DATA:-../shared/data}
BUDGET=${BUDGET:-540}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
WORK=$(mktemp -d)
start=$(date +%s)
: > "$OUT/log.txt"

left() { echo $(( BUDGET - ($(date +%s) - start) )); }

part() {  # part NAME CAP_SECONDS LOGFILE COMMAND...: run under min(CAP, time left)
  local name=$1 cap=$2 log=$3 t0 rc
  shift 3
  local l
  l=$(left)
  if [ "$l" -le 10 ]; then
    echo "$name: skipped (no time left)" >> "$OUT/log.txt"
    return
  fi
  [ "$cap" -gt "$l" ] && cap=$l
  t0=$(date +%s)
  timeout -k 5 "$cap" "$@" >> "$log" 2>&1
  rc=$?
  echo "$name: exit $rc in $(( $(date +%s) - t0 )) s$( [ $rc -eq 124 ] && echo ' (time guard)')" >> "$OUT/log.txt"
}

if [ $DRY -eq 1 ]; then
  DEVICE=cpu; SIZE=16; SPEED=(--steps 3 --repeats 1 --stack 2 --precisions "" --tasks denoise)
  TABLES="3 2"; PAPER=(--crop 16 --steps 2 --images butterfly)
  TESTS=(tests/test_cuda.py)
  TILE_SIZES=(64); TILE_ARGS=(--steps 1 --tile 32:8 --width 16)
  DEBLUR=(deblur/butterfly --crop 32 --steps 2)
else
  DEVICE=cuda; SIZE=256; SPEED=(--repeats 2 --stack 8 --precisions tf32,bf16)
  TABLES="1 6 9 4 11 3 2 5 8 7 10 13 12"; PAPER=()
  TESTS=(tests/test_cuda.py tests/test_engine.py tests/test_paths.py tests/test_fidelity.py tests/test_tiling.py)
  TILE_SIZES=(512 2048); TILE_ARGS=(--steps 100 --stack 16)
  DEBLUR=(deblur/parrots deblur/butterfly deblur/leaves deblur/starfish)
fi

# the tests read ../shared/data beside the checkout: give them the carried copy when it is missing
if [ ! -e ../shared/data ] && [ -d "$DATA" ]; then
  mkdir -p ../shared && cp -r "$DATA" ../shared/data
fi

{
  echo "started $(date -u +%FT%TZ), budget ${BUDGET} s, dry run ${DRY}, device ${DEVICE}"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  git rev-parse --short HEAD 2>/dev/null
} > "$OUT/machine.txt" 2>&1

part tests 120 "$OUT/tests.log" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
# tiles: a 2048x2048 noisy photo in stacked tiles (100 fixed steps per tile) and a 512x512 one for
# the time per pixel (benchmarks/tiles_scale.py prints one JSON line per size)
part tiles 120 "$OUT/speed.log" "$PY" benchmarks/tiles_scale.py "${TILE_SIZES[@]}" --device "$DEVICE" \
  --data "$DATA" "${TILE_ARGS[@]}"
part speed 150 "$OUT/speed.log" "$PY" -m linr bench speed --device "$DEVICE" --size "$SIZE" \
  --data "$DATA" --json "$OUT/speed.json" "${SPEED[@]}"
# #15 deblurring on the four whole Table 4 images: the default fit (4000 steps) refined by
# grouped-deblur (benchmarks/deblur_refine.py; hours per image on the project's CPU)
# (its rows are printed into paper.log: a lent machine returns at most 8 files)
part deblur 240 "$OUT/paper.log" env LINR_DATA="$DATA" "$PY" benchmarks/deblur_refine.py "${DEBLUR[@]}" \
  --device "$DEVICE" --schedule 20:30:2
# the paper profile, fits recorded in (and resumed from) jobs.jsonl, which starts from the fits of
# earlier GPU runs (RESUME_FROM; tables they finished cost a few seconds of reporting)
RESUME_FROM=${RESUME_FROM:-benchmarks/gpu_h200_jobs.jsonl}
if [ $DRY -eq 0 ] && [ -f "$RESUME_FROM" ] && [ ! -f "$OUT/jobs.jsonl" ]; then
  cp "$RESUME_FROM" "$OUT/jobs.jsonl"
fi
bench=("$PY" -m linr bench --profile paper --device "$DEVICE" --data "$DATA" --exclude dip dip_recipe
       --jobs "$OUT/jobs.jsonl" --out "$WORK/paper" --no-plots "${PAPER[@]}")
done_tables=()
for t in $TABLES; do
  part "table $t" 600 "$OUT/paper.log" "${bench[@]}" --tables "$t"
  tail -n 1 "$OUT/log.txt" | grep -q ": exit 0 " && done_tables+=("$t")
done
# one report over every finished table (all fits come from jobs.jsonl: nothing is refitted)
if [ ${#done_tables[@]} -gt 0 ]; then
  BUDGET=$(( BUDGET + 60 )) part report 60 "$OUT/paper.log" "${bench[@]}" --tables "${done_tables[@]}"
  [ -f "$WORK/paper/report.md" ] && cp "$WORK/paper/report.md" "$OUT/report.md"
fi
rm -rf "$WORK"
echo "finished $(date -u +%FT%TZ) after $(( $(date +%s) - start )) s" >> "$OUT/log.txt"
