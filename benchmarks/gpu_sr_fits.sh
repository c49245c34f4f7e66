#!/usr/bin/env bash
# On a lent GPU: the default fits of one low-res view at x2 and x8 (#15: to measure the examples
# network of `grouped-views-examples`, the default refiner at x2 and x4, on whole images at x2, and
# at x8 at all) for the
# four set9 tune images (256-px centre crops, as x4 was chosen on) and Set5 whole (the report),
# BUDGET seconds at most (default 300), several fits at once on the card; each factor's fits come
# back as one tar file ($OUT/fits_x2.tar, $OUT/fits_x8.tar; unpack into a cache folder), and this
# CPU refines them with benchmarks/sr_examples.py --factor F --cache FOLDER.
#
#   OUT=gpu_out DATA=.gpudata benchmarks/gpu_sr_fits.sh
#   benchmarks/gpu_sr_fits.sh --dry-run       # on the CPU: one 32-px crop, both factors
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-gpu_out}
BUDGET=${BUDGET:-300}
DEVICE=cuda
JOBS=${JOBS:-6}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 LINR_DATA=${DATA:-../shared/data} OMP_NUM_THREADS=2
TUNE="set9/house set9/peppers set9/baboon set9/kodim01"
REPORT="set5/baby set5/bird set5/butterfly set5/head set5/woman"
if [ "${1:-}" = "--dry-run" ]; then
  DEVICE=cpu; TUNE="set9/house"; REPORT=""; CROP=32
else
  CROP=256
fi
mkdir -p "$OUT/fits_x2" "$OUT/fits_x8"
{
  for f in 2 8; do
    for i in $TUNE; do echo "$i --crop $CROP --factor $f --cache $OUT/fits_x$f"; done
    for i in $REPORT; do echo "$i --factor $f --cache $OUT/fits_x$f"; done
  done
} > "$OUT/items.txt"
start=$(date +%s)
# shellcheck disable=SC2086
timeout -k 5 "$BUDGET" xargs -P "$JOBS" -L 1 "$PY" benchmarks/sr_examples.py --device "$DEVICE" --fit-only \
  < "$OUT/items.txt" > "$OUT/fits.log" 2>&1
echo "fits: exit $? in $(( $(date +%s) - start )) s; $(ls "$OUT"/fits_x2 "$OUT"/fits_x8 | grep -c npz) fits" >> "$OUT/fits.log"
for f in 2 8; do tar -C "$OUT" -cf "$OUT/fits_x$f.tar" "fits_x$f" && rm -r "$OUT/fits_x$f"; done
