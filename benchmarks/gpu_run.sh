#!/usr/bin/env bash
# One prepared GPU run, meant for a lent H200 and sized for its budget: within BUDGET seconds of
# wall time (default 450) it runs, each part under a time guard, writing everything to $OUT (at
# most 8 files come back):
#   1. machine.txt  GPU, driver, torch, CUDA, commit
#   2. speed.log    (first, alone on the GPU, so that its times are clean) benchmarks/profile_tiles.py:
#                   torch's profiler over 8 steps of a 1024-px noisy photo's 16 tiles in one stack
#                   (where a stacked step's time goes on CUDA; since the thirty-eighth session the
#                   default chunk takes a stack's step at once there: linr.engine.chunk_pixels_for);
#                   then benchmarks/tiles_scale.py: a 512x512 noisy photo in stacked tiles, 25
#                   fixed steps per tile, time per pixel (fit and refinement apart) and peak memory
#                   (the 2048-px photo was timed in the thirty-seventh session, 102 s; in the
#                   thirty-eighth its refinement on the host kept it past a 150-s guard)
#   3. then streams at once on the one GPU, each a list of TABLE:METHOD[:IMAGE] items (an image
#      named: only that image), and the CUDA tests beside them:
#      a, b. paper.log  DIP at its own recipe on Table 1 (#15: "above DIP at its own recipe"; 3000
#                    steps at 512x512 and more took over 4 minutes an image in the thirty-eighth
#                    session's lease, when each step drew its input's perturbation on the host:
#                    since the fortieth it is drawn on the card), the 512-px images first, two
#                    at a time; each finished fit is kept
#      c. tests.log  the CUDA tests (tests/test_cuda.py)
#   4. jobs.jsonl   every finished fit (starts as a copy of RESUME_FROM, the committed fits of the
#                   earlier GPU runs, so only what is missing is fitted; rerun to resume)
#      report.md    the paper column of every finished table, from jobs.jsonl (nothing refitted)
#   5. log.txt      each part's exit status and seconds
#
#   OUT=gpu_out DATA=../shared/data benchmarks/gpu_run.sh
#   benchmarks/gpu_run.sh --dry-run     # the same parts on the CPU, tiny crops, a few steps
#
# The default columns, `fast` and the classical methods are left out: this CPU measured them at
# full size (BENCHMARKS.md), and the budget is for what only a GPU can do here. The data folder
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
  STREAM_A="1:linr 1:dip_recipe:kodim03"; STREAM_B="4:linr"; PAPER=(--crop 32 --steps 2)
  TESTS=(tests/test_cuda.py)
  TILE_SIZES=(64); TILE_ARGS=(--steps 1 --tile 32:8 --width 16)
  PROFILE_ARGS=(--size 64 --steps 1 --tile 32:8 --width 16 --stack 4)
else
  DEVICE=cuda
  STREAM_A="1:dip_recipe:house 1:dip_recipe:baboon 1:dip_recipe:kodim01 1:dip_recipe:kodim03"
  STREAM_B="1:dip_recipe:peppers 1:dip_recipe:f16 1:dip_recipe:kodim02 1:dip_recipe:kodim12"
  PAPER=()
  TESTS=(tests/test_cuda.py)
  TILE_SIZES=(512); TILE_ARGS=(--steps 25 --stack 16)
  PROFILE_ARGS=(--size 1024 --steps 8 --stack 16)
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

# 2. alone on the GPU: a profile of a 1024-px photo's stacked tile steps, then a 512x512 noisy
# photo in stacked tiles (25 fixed steps per tile) for the time per pixel
part "tiles profile" 60 "$OUT/speed.log" "$PY" benchmarks/profile_tiles.py --device "$DEVICE" --data "$DATA" \
  "${PROFILE_ARGS[@]}"
part tiles 60 "$OUT/speed.log" "$PY" benchmarks/tiles_scale.py "${TILE_SIZES[@]}" --device "$DEVICE" \
  --data "$DATA" "${TILE_ARGS[@]}"

# 3. the paper column, two streams with their own jobs files (merged below), and the tests beside them
RESUME_FROM=${RESUME_FROM:-benchmarks/gpu_h200_jobs.jsonl}
for s in a b; do
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
    part "table $t $m${i:+ $i} ($s)" 600 "$WORK/paper_$s.log" "${BENCH[@]}" --methods "$m" --tables "$t"
    # the whole log (the other stream and the tests append to it too; each part's name is unique)
    [ "$m" = linr ] && [ -z "$i" ] && grep -q "^table $t $m ($s): exit 0 " "$OUT/log.txt" && echo "$t" >> "$WORK/done_tables"
  done
}
: > "$WORK/done_tables"
( stream a "$STREAM_A" ) &
( stream b "$STREAM_B" ) &
( part tests 150 "$OUT/tests.log" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" ) &
wait
cat "$WORK/paper_a.log" "$WORK/paper_b.log" > "$OUT/paper.log" 2>/dev/null

# 4. one jobs file (each stream's file holds RESUME_FROM's rows and its own; keys are unique per fit)
"$PY" - "$WORK/jobs_a.jsonl" "$WORK/jobs_b.jsonl" > "$OUT/jobs.jsonl" <<'PYEOF'
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
  bench r $(for t in $done_tables; do dry_image "$t"; done | sort -u)
  BUDGET=$(( BUDGET + 60 )) part report 60 "$OUT/paper.log" "${BENCH[@]}" --methods linr --tables $done_tables
  [ -f "$WORK/paper_r/report.md" ] && cp "$WORK/paper_r/report.md" "$OUT/report.md"
fi
rm -rf "$WORK"
echo "finished $(date -u +%FT%TZ) after $(( $(date +%s) - start )) s" >> "$OUT/log.txt"
