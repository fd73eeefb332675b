#!/usr/bin/env bash
# Continue the embedded generator's training on an accelerator for a fixed wall time, and bring
# back a compact (float16) model: the run folder's optimiser state is too large to carry around,
# so a lent machine starts from the shipped weights and returns weights only.
#
#   scripts/train_on_gpu.sh MODEL_IN MINUTES MODEL_OUT [more train_generator.py flags]
#   scripts/train_on_gpu.sh samples/models/synthfaces64.pt 8 $OUT/synthfaces64.pt --adv-weight 0.05
#
# DEVICE (default cuda), BATCH (default 64), WORKERS (default: cores - 2) and RUN (default
# runs/gpu) can be set in the environment. Rerunning with the same RUN resumes that run exactly.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 MODEL_IN MINUTES MODEL_OUT [train_generator.py flags]" >&2
  exit 2
fi
model_in=$1 minutes=$2 model_out=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
run=${RUN:-runs/gpu}
workers=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
python "$here/train_generator.py" "$run" --init "$model_in" --device "${DEVICE:-cuda}" \
  --batch "${BATCH:-64}" --workers "$workers" --minutes "$minutes" --kimg 100000 \
  --save-every 500 --sample-every 2000 "$@"
python "$here/train_generator.py" "$run" --export "$model_out" --half
python "$here/world_quality.py" --model "$model_out" --steps 0 --z 32
