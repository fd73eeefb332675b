#!/usr/bin/env bash
# Continue (or grow) the embedded generator's training on an accelerator for a fixed wall time, and
# bring back a compact (float16) model: the run folder's optimiser state is too large to carry
# around, so a lent machine starts from the shipped weights and returns weights only.
#
#   scripts/train_on_gpu.sh MODEL_IN MINUTES MODEL_OUT [more train_generator.py flags]
#   scripts/train_on_gpu.sh samples/models/synthfaces64.pt 8 $OUT/synthfaces64.pt --adv-weight 0.05
#   LRS="0.003 0.0015" scripts/train_on_gpu.sh samples/models/synthfaces64.pt 8 $OUT/synthfaces256.pt \
#       --size 256 --channels 256,256,192,96,48,32,16          # grow 64² → 256²
#
# The renderer runs in WORKERS processes on the machine's CPU cores (default: cores - 2) while the
# GPU trains. LRS splits MINUTES into equal phases, one learning rate each (a step decay; default
# one phase at train_generator's default lr). DEVICE (default cuda), BATCH (default 64) and RUN
# (default runs/gpu) can be set too. Rerunning with the same RUN resumes that run exactly.
# Beside MODEL_OUT it writes MODEL_OUT's stem + .quality.json and .grid.png (held-out samples
# beside their renders).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 MODEL_IN MINUTES MODEL_OUT [train_generator.py flags]" >&2
  exit 2
fi
model_in=$1 minutes=$2 model_out=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
run=${RUN:-runs/gpu}
workers=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
read -r -a lrs <<< "${LRS:-default}"
phase_minutes=$("$py" -c "print($minutes / ${#lrs[@]})")
for lr in "${lrs[@]}"; do
  lr_flag=()
  [ "$lr" != default ] && lr_flag=(--lr "$lr")
  "$py" "$here/train_generator.py" "$run" --init "$model_in" --device "${DEVICE:-cuda}" \
    --batch "${BATCH:-64}" --workers "$workers" --minutes "$phase_minutes" --kimg 100000 \
    --save-every 500 --sample-every 2000 "${lr_flag[@]}" "$@"
done
"$py" "$here/train_generator.py" "$run" --export "$model_out" --half
"$py" "$here/world_quality.py" --model "$model_out" --steps 0 --z 32 --grid "${model_out%.pt}.grid.png" \
  | tee "${model_out%.pt}.quality.json"
