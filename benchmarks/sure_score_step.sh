#!/bin/sh
# The SURE pick's scoring filter's reference step (linr.sure.SCORE_STEP) on the default-stop splits:
# every split's default rerun with the scoring step given, the fixed fit's oracle and curve taken from
# the committed rows of the same crops (--oracle-from), one torch thread; rows
# benchmarks/default_stop_score{STEP}{LABEL}_{CROP}_{SPLIT}.jsonl (resumable). PATIENCE (default
# 1000000: the second fit runs its budget, as the score{3,6,8} rows were made) and LABEL (default
# empty) from the environment; the forty-first session's rows of the second fit's early end:
#     LABEL=p2 PATIENCE=2 nice sh benchmarks/sure_score_step.sh 8 tune|report|unseen
#     nice sh benchmarks/sure_score_step.sh STEP tune|report|unseen
set -e
step=$1 split=$2
py=${PYTHON:-.venv/bin/python}
tune="baboon house kodim01 peppers"
report="set5/baby set5/bird set5/butterfly set5/head set5/woman"
unseen="deblur/leaves deblur/parrots deblur/starfish inpaint/kate inpaint/library inpaint/vase f16 kodim02 kodim03 kodim12"
case $split in
  tune) images=$tune; crops="grey64 grey96 grey128 rgb64 rgb128" ;;
  report) images=$report; crops="grey64 grey96 grey128 rgb64 rgb128" ;;
  unseen) images=$unseen; crops="grey96" ;;
  *) echo "split: tune, report or unseen" >&2; exit 2 ;;
esac
for crop in $crops; do
  colour=${crop%%[0-9]*} size=${crop#grey}; size=${size#rgb}
  old=benchmarks/default_stop_sure_${crop}_$split.jsonl
  [ "$split" = unseen ] && old=benchmarks/default_stop_sure_unseen_$crop.jsonl
  OMP_NUM_THREADS=1 $py -m linr bench default-stop $images --colour $colour --size $size \
    --sure-score-step "$step" --sure-score-patience "${PATIENCE:-1000000}" --oracle-from "$old" --rows benchmarks/default_stop_score${step}${LABEL}_${crop}_$split.jsonl
done
