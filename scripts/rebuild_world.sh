#!/usr/bin/env bash
# Rebuild everything that depends on the embedded generator, in dependency order.
#
#   bash scripts/rebuild_world.sh STEP [STEP ...]     # or: all
#
# Steps (each one a command you can also run by hand):
#   encoders     fine-tune both encoders on the current $MODEL ($RUNS/enc_stylemap_v2,
#                $RUNS/restyle: resumed, or started from the shipped encoders; ENC_KIMG in all), export float16, attach
#   directions   refit the named directions from the model's own samples (renderer labels)
#   attributes   retrain the attribute predictor that names discovered paths
#   paths        resume the three discovered path sets for DISCOVER_MINUTES each (curvilinear starting
#                from linear), then name and write them
#   samples      rewrite samples/ (held-out renders: identical bytes unless the renderer changed)
#   pictures     docs/ pictures: samples vs renders, inversions, edits, PULSE, paint, real photos
#   bench        docs/BENCHMARKS.md sections that depend on the model
#
# Threads: every command runs with THREADS torch threads (default 2); the path sets and the two
# encoders train two at a time with one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ENC_KIMG=${ENC_KIMG:-60}
DISCOVER_MINUTES=${DISCOVER_MINUTES:-10}
MODEL=${MODEL:-samples/models/synthfaces64.pt}   # MODEL=samples/models/synthfaces256.pt for the 256² world
STEM=$(basename "$MODEL" .pt)
SIZE=$(python -c "from optinv.io.checkpoints import load_generator; print(load_generator('$MODEL').size)")
RUNS=runs; [ "$STEM" = synthfaces64 ] || RUNS=runs/$STEM   # another model's runs apart: never resumed across generators
export OMP_NUM_THREADS=$THREADS

encoders() {
  # StyleMap: a one-pass encoder ($RUNS/enc_stylemap_v2). W+: the shipped encoder is iterative (3 passes,
  # ReStyle-style): its refiner is fine-tuned in $RUNS/restyle with the first pass frozen.
  # A model grown from another (card: grown_from) and without encoders of its own starts from its
  # parent's: train-encoder grows them to its layers and input size (a zero-started detail branch
  # reads the full-size image) and trains them whole, at batch 8 (the image loss runs at full size).
  local parent
  parent=$(python -c "from optinv.io.checkpoints import load_generator; print(load_generator('$MODEL').card.get('grown_from', ''))")
  [ -d "$RUNS/renders" ] || python scripts/make_dataset.py "$RUNS/renders" --start 0 --count 4000 --size "$SIZE"
  for kind in wplus stylemap; do
    run="$RUNS/enc_${kind}_v2" extra=()
    [ "$kind" = wplus ] && run=$RUNS/restyle extra=(--passes 3 --batch 32)
    init=()  # a new run starts from the shipped encoder (fitted to the previous generator)
    if [ ! -f "$run/latest.pt" ] && [ -f "samples/models/${STEM}.enc_${kind}.pt" ]; then
      init=(--init "samples/models/${STEM}.enc_${kind}.pt" --lr 0.0005)
    elif [ ! -f "$run/latest.pt" ] && [ -n "$parent" ] && [ -f "samples/models/${parent}.enc_${kind}.pt" ]; then
      init=(--init "samples/models/${parent}.enc_${kind}.pt" --batch 8 --lr 0.0002)
      [ "$kind" = wplus ] && init=(--init "samples/models/${parent}.enc_${kind}.pt" --batch 8 --lr 0.0001) extra=(--passes 3)
    fi
    OMP_NUM_THREADS=1 optinv train-encoder "$run" --kind "$kind" --model "$MODEL" \
      --kimg "$ENC_KIMG" --threads 1 --data $RUNS/renders --real-fraction 0.5 "${init[@]}" "${extra[@]}" \
      > "$RUNS/enc_${kind}.rebuild.log" 2>&1 &
  done
  wait
  for kind in wplus stylemap; do
    run="$RUNS/enc_${kind}_v2"
    [ "$kind" = wplus ] && run=$RUNS/restyle
    optinv train-encoder "$run" --kind "$kind" --model "$MODEL" \
      --export "samples/models/${STEM}.enc_${kind}.pt" --attach --half
  done
}

directions() { python scripts/fit_directions.py --model "$MODEL"; }

attributes() { python scripts/train_attributes.py --model "$MODEL" --renders 3000 --model-images 1000 --epochs 10; }

paths() {
  # Linear and warped first (two at a time on two cores); curvilinear then starts where linear
  # ended (--start-from: its directions and reconstructor; used only when its run is new). The shipped
  # sets: linear 6126 steps; curvilinear from linear at 990 steps, 1600 steps at lr 1e-3, then 3e-4 to 5843.
  mkdir -p $RUNS/discover
  discover_run() {
    OMP_NUM_THREADS=1 optinv directions discover --method "$1" --k 8 --space w --steps 100000 \
      --max-minutes "$DISCOVER_MINUTES" --checkpoint "$RUNS/discover/$1_w.ckpt.pt" --predictor none \
      --out "$RUNS/discover/$1.scratch.paths.pt" --overwrite -m "$MODEL" "${@:2}" >> "$RUNS/discover/$1.log" 2>&1
  }
  discover_run linear & discover_run warped & wait
  discover_run curvilinear --start-from $RUNS/discover/linear_w.ckpt.pt --steps 1600  # (--steps: the last one counts)
  discover_run curvilinear --lr-paths 3e-4  # a slower second stage: at 1e-3 the flow diverged after ~2000 steps
  for method in linear warped curvilinear; do
    optinv directions discover --method "$method" --k 8 --space w --steps 1 -m "$MODEL" \
      --checkpoint "$RUNS/discover/${method}_w.ckpt.pt" --out "samples/models/${STEM}.${method}.paths.pt" --overwrite
  done
}

samples() { python scripts/make_samples.py; }

pictures() {
  python scripts/make_docs_pictures.py --model "$MODEL"
  python scripts/world_quality.py --model "$MODEL" --grid docs/samples_vs_renders.png > /dev/null
  python scripts/real_photos.py --only strip
}

bench() {
  python scripts/benchmark.py --only world,invert,stylemap_res,pulse,paint,overhead,encoder,directions
}

steps=("$@")
if [ "${#steps[@]}" -eq 0 ]; then sed -n 2,18p "$0"; exit 2; fi
if [ "${steps[0]}" = all ]; then steps=(encoders directions attributes paths samples pictures bench); fi
for step in "${steps[@]}"; do
  case "$step" in
    encoders|directions|attributes|paths|samples|pictures|bench) echo "== $step"; "$step" ;;
    *) echo "rebuild_world.sh: unknown step '$step' (see the list at the top of this file)" >&2; exit 2 ;;
  esac
done
