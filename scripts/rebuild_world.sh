#!/usr/bin/env bash
# Rebuild everything that depends on the embedded generator, in dependency order.
#
#   bash scripts/rebuild_world.sh STEP [STEP ...]     # or: all
#
# Steps (each one a command you can also run by hand):
#   encoders     fine-tune both encoders on the current samples/models/synthfaces64.pt (runs/enc_*_v2:
#                resumed, or started from the shipped encoders; ENC_KIMG in all), export float16, attach
#   directions   refit the named directions from the model's own samples (renderer labels)
#   attributes   retrain the attribute predictor that names discovered paths
#   paths        resume the three discovered path sets for DISCOVER_MINUTES each, then name and write them
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
MODEL=samples/models/synthfaces64.pt
export OMP_NUM_THREADS=$THREADS

encoders() {
  [ -d runs/renders ] || python scripts/make_dataset.py runs/renders --start 0 --count 4000 --size 64
  for kind in wplus stylemap; do
    init=()  # a new run starts from the shipped encoder (fitted to the previous generator)
    [ -f "runs/enc_${kind}_v2/latest.pt" ] || init=(--init "samples/models/synthfaces64.enc_${kind}.pt" --lr 0.0005)
    OMP_NUM_THREADS=1 python scripts/train_encoder.py "runs/enc_${kind}_v2" --kind "$kind" --model "$MODEL" \
      --kimg "$ENC_KIMG" --threads 1 --data runs/renders --real-fraction 0.5 "${init[@]}" \
      > "runs/enc_${kind}_v2.rebuild.log" 2>&1 &
  done
  wait
  for kind in wplus stylemap; do
    python scripts/train_encoder.py "runs/enc_${kind}_v2" --kind "$kind" --model "$MODEL" \
      --export "samples/models/synthfaces64.enc_${kind}.pt" --attach --half
  done
}

directions() { python scripts/fit_directions.py --model "$MODEL"; }

attributes() { python scripts/train_attributes.py --model "$MODEL" --renders 3000 --model-images 1000 --epochs 10; }

paths() {
  mkdir -p runs/discover
  for method in linear warped curvilinear; do
    OMP_NUM_THREADS=1 optinv directions discover --method "$method" --k 8 --space w --steps 100000 \
      --max-minutes "$DISCOVER_MINUTES" --checkpoint "runs/discover/${method}_w.v2.ckpt.pt" --predictor none \
      --out "runs/discover/${method}.scratch.paths.pt" --overwrite -m "$MODEL" > "runs/discover/${method}.v2.log" 2>&1 &
    if [ "$method" = warped ]; then wait; fi  # two at a time on two cores
  done
  wait
  for method in linear warped curvilinear; do
    optinv directions discover --method "$method" --k 8 --space w --steps 1 -m "$MODEL" \
      --checkpoint "runs/discover/${method}_w.v2.ckpt.pt" --out "samples/models/synthfaces64.${method}.paths.pt" --overwrite
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
if [ "${#steps[@]}" -eq 0 ]; then sed -n 2,17p "$0"; exit 2; fi
if [ "${steps[0]}" = all ]; then steps=(encoders directions attributes paths samples pictures bench); fi
for step in "${steps[@]}"; do
  case "$step" in
    encoders|directions|attributes|paths|samples|pictures|bench) echo "== $step"; "$step" ;;
    *) echo "rebuild_world.sh: unknown step '$step' (see the list at the top of this file)" >&2; exit 2 ;;
  esac
done
