#!/usr/bin/env bash
# One prepared GPU run, meant for a lent H200 and sized for its budget: within BUDGET seconds of
# wall time (default 450) it runs, each part under a time guard, writing everything to $OUT (at
# most 8 files come back):
#   1. log.txt      first the machine: GPU, driver, torch, CUDA, commit (then part 5)
#   2. speed.log    (first, alone on the GPU, so that its times are clean) benchmarks/tiles_scale.py:
#                   a 2048x2048 noisy photo in stacked tiles, 25 fixed steps per tile, time per
#                   pixel (the fit and the refinement on the host apart) and peak memory (#14's
#                   GPU target; timed at 102 s in the thirty-seventh session before the default
#                   chunk on CUDA grew to a stack's step, linr.engine.chunk_pixels_for; past a
#                   150-s guard in the thirty-eighth, its host refinement unsplit)
#   3. then streams at once, each a list of TABLE:METHOD[:IMAGE] items (an image named: only that
#      image; each finished fit is kept), beside the CUDA tests and the SR fits:
#      a-e. paper.log  Table 2 with today's default, one image a stream (#15: SR x4's default,
#                   `grouped-views-examples`, on all five of Table 2 on one machine; this CPU
#                   measured four, the fits differing by machine): the fit on the card, the
#                   refinement on the host; then DIP at its own recipe on the same image (2000
#                   steps; baby alone was fitted, in the thirty-eighth session's lease)
#      f. fits_x2.tar, fits_x8.tar  benchmarks/gpu_sr_fits.sh: the default fits at x2 and x8 of
#                   the set9 tune crops (256 px) and Set5 whole, for this CPU to refine (the
#                   examples network at x2 was measured on 128-px crops only, x8 not whole)
#      g. tests.log  the CUDA tests (tests/test_cuda.py)
#   4. jobs.jsonl   every finished fit (starts as a copy of RESUME_FROM, the committed fits of the
#                   earlier GPU runs, so only what is missing is fitted; rerun to resume)
#      report.md    the paper column of every finished table, from jobs.jsonl (nothing refitted; none
#                   in this run's items: with one it would be a ninth file, and one would be lost)
#   5. log.txt      each part's exit status and seconds
#
#   OUT=gpu_out DATA=../shared/data benchmarks/gpu_run.sh
#   benchmarks/gpu_run.sh --dry-run     # the same parts on the CPU, tiny crops, a few steps (not the
#                                       # SR fits: benchmarks/gpu_sr_fits.sh --dry-run)
#
# `fast`, the classical methods and the other default columns are left out: this CPU measured them
# at full size (BENCHMARKS.md), and the budget is for what only a GPU can do here. The data folder
# must travel with the working tree on a lent machine: copy ../shared/data into an ignored folder
# (e.g. .gpudata, listed in .git/info/exclude) and pass DATA=.gpudata.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-gpu_out}
DATA=${DATA:-../shared/data}
BUDGET=${BUDGET:-450}
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
  DEVICE=cpu
  STREAMS=("1:linr 1:dip_recipe:kodim03" "4:linr" "2:linr_default:bird"); PAPER=(--crop 32 --steps 2)
  TESTS=(tests/test_cuda.py)
  TILE_SIZES=(64); TILE_ARGS=(--steps 1 --tile 32:8 --width 16)
else
  DEVICE=cuda
  STREAMS=()
  for i in baby bird butterfly head woman; do STREAMS+=("2:linr_default:$i 2:dip_recipe:$i"); done
  PAPER=()
  TESTS=(tests/test_cuda.py)
  TILE_SIZES=(2048); TILE_ARGS=(--steps 25 --stack 16)
fi

# the tests read ../shared/data beside the checkout: give them the carried copy when it is missing
if [ ! -e ../shared/data ] && [ -d "$DATA" ]; then
  mkdir -p ../shared && cp -r "$DATA" ../shared/data
fi

{
  echo "started $(date -u +%FT%TZ), budget ${BUDGET} s, dry run ${DRY}, device ${DEVICE}"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null) (changed since: $(git status --short 2>/dev/null | wc -l) files;"\
    "a lent machine's copy may keep an earlier commit's metadata: its working tree is what ran)"
} >> "$OUT/log.txt" 2>&1

# 2. alone on the GPU: a noisy photo in stacked tiles (25 fixed steps per tile) for the time per pixel
part tiles 200 "$OUT/speed.log" "$PY" benchmarks/tiles_scale.py "${TILE_SIZES[@]}" --device "$DEVICE" \
  --data "$DATA" "${TILE_ARGS[@]}"

[ $DRY -eq 0 ] && export OMP_NUM_THREADS=2  # from here several streams share the host's cores

# 3. the streams, each with its own jobs file (merged below), the tests and the SR fits beside them
RESUME_FROM=${RESUME_FROM:-benchmarks/gpu_h200_jobs.jsonl}
NAMES=(a b c d e f g h)
for k in "${!STREAMS[@]}"; do
  s=${NAMES[$k]}
  if [ $DRY -eq 0 ] && [ -f "$RESUME_FROM" ]; then cp "$RESUME_FROM" "$WORK/jobs_$s.jsonl"; else : > "$WORK/jobs_$s.jsonl"; fi
done
bench() {  # bench STREAM [IMAGES]: the paper-profile command recording its fits in that stream's jobs file
  BENCH=("$PY" -m linr bench --profile paper --device "$DEVICE" --data "$DATA" --jobs "$WORK/jobs_$1.jsonl"
         --out "$WORK/paper_$1" --no-plots "${PAPER[@]}")
  [ $# -gt 1 ] && BENCH+=(--images "${@:2}")
}
dry_image() { [ "$1" = 4 ] && echo butterfly || echo kodim03; }  # a dry run's one image of table $1
stream() {  # stream NAME ITEMS: each TABLE:METHOD[:IMAGE] item in turn (a finished paper column
  local s=$1 item t m i  # of a whole table goes into the report)
  for item in $2; do
    IFS=: read -r t m i <<< "$item"
    if [ -n "$i" ]; then bench "$s" "$i"; elif [ $DRY -eq 1 ]; then bench "$s" "$(dry_image "$t")"; else bench "$s"; fi
    # a dry run's SR x4 from a 7-px view, too small to learn from its own copies: that learning
    # (2 x 1000 steps whatever --steps; tests/test_internal.py) took most of the dry run's time
    [ $DRY -eq 1 ] && [ "$t" = 2 ] && BENCH+=(--crop 28)
    part "table $t $m${i:+ $i} ($s)" 600 "$WORK/paper_$s.log" "${BENCH[@]}" --methods "$m" --tables "$t"
    # the whole log (the other streams and the tests append to it too; each part's name is unique)
    [ "$m" = linr ] && [ -z "$i" ] && grep -q "^table $t $m ($s): exit 0 " "$OUT/log.txt" && echo "$t" >> "$WORK/done_tables"
  done
}
: > "$WORK/done_tables"
for k in "${!STREAMS[@]}"; do
  ( stream "${NAMES[$k]}" "${STREAMS[$k]}" ) &
done
( part tests 150 "$OUT/tests.log" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" ) &
if [ $DRY -eq 0 ]; then  # the fits at x2 and x8 (benchmarks/gpu_sr_fits.sh; its own guard: the time left)
  ( l=$(( $(left) - 15 ))
    if [ "$l" -ge 30 ]; then
      mkdir -p "$WORK/sr" && OUT="$WORK/sr" DATA="$DATA" JOBS=3 BUDGET=$l benchmarks/gpu_sr_fits.sh
      cp "$WORK/sr/fits_x2.tar" "$WORK/sr/fits_x8.tar" "$OUT/" 2>/dev/null  # one file each: 16 MiB at most a file
      echo "sr fits: $(tail -1 "$WORK/sr/fits.log" 2>/dev/null)" >> "$OUT/log.txt"
    else
      echo "sr fits: skipped (no time left)" >> "$OUT/log.txt"
    fi ) &
fi
wait
for k in "${!STREAMS[@]}"; do cat "$WORK/paper_${NAMES[$k]}.log"; done > "$OUT/paper.log" 2>/dev/null

# 4. one jobs file (each stream's file holds RESUME_FROM's rows and its own; keys are unique per fit)
"$PY" - "$WORK"/jobs_?.jsonl > "$OUT/jobs.jsonl" <<'PYEOF'
import json, sys
seen = set()
for path in sys.argv[1:]:
    for line in open(path):
        if line.strip() and json.loads(line)["key"] not in seen:
            seen.add(json.loads(line)["key"])
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
PYEOF
done_tables=$(sort -n "$WORK/done_tables" | tr '\n' ' ')
if [ -n "$done_tables" ]; then
  cp "$OUT/jobs.jsonl" "$WORK/jobs_r.jsonl"
  # shellcheck disable=SC2086
  # shellcheck disable=SC2046
  if [ $DRY -eq 1 ]; then bench r $(for t in $done_tables; do dry_image "$t"; done | sort -u); else bench r; fi
  BUDGET=$(( BUDGET + 60 )) part report 60 "$OUT/paper.log" "${BENCH[@]}" --methods linr --tables $done_tables
  [ -f "$WORK/paper_r/report.md" ] && cp "$WORK/paper_r/report.md" "$OUT/report.md"
fi
rm -rf "$WORK"
echo "finished $(date -u +%FT%TZ) after $(( $(date +%s) - start )) s" >> "$OUT/log.txt"
