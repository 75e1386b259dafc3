#!/usr/bin/env bash
# Trains the small per-schedule MNIST models that benchmarks/seed000_tables.py and benchmarks/seed004_ablation.py use.
#
# Each model is the shipped `mnist-ddpm` (linear β, T = 1000) fine-tuned for STEPS steps (default 1,000) on
# another schedule, length or objective, so every model has the same architecture and the same compute on top
# of one shared start. From the current 3.6M-parameter base a step of 64 takes about 2.1 s on one CPU thread
# (1,000 steps: 35 min a model; two models at a time on the 2 cores). The published seed 000 tables were
# measured on 500-step fine-tunes of the earlier 0.69M base (about 3 min a model on two cores).
# Models land in runs/seed-models/.
#
#   bash benchmarks/train_seed_models.sh            # all of them
#   bash benchmarks/train_seed_models.sh cosine-300 trig-joint-1000   # some of them
#   BASE=path/to/pipeline STEPS=2000 OUT=runs/seed-models-2000 bash benchmarks/train_seed_models.sh   # another start and length
#   OMP_NUM_THREADS=1 JOBS=2 bash benchmarks/train_seed_models.sh   # two at a time (one a CPU core; on a GPU, JOBS=8 share it)
#
# With JOBS > 1 each model's output goes to $OUT/logs/<name>.log. MNIST: MNIST_NPZ, else ../shared/data/mnist.npz.
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST_NPZ="${MNIST_NPZ:-../shared/data/mnist.npz}"
BASE="${BASE:-diffusers_infoflow/assets/models/mnist-ddpm}"
OUT="${OUT:-runs/seed-models}"
STEPS="${STEPS:-1000}"
JOBS="${JOBS:-1}"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "JOBS must be a whole number of at least 1, got '$JOBS'." >&2; exit 2; }
ALL=(cosine-300 quadratic-300 trig-eps-1000 trig-joint-1000 linear-eps-1000 linear-joint-1000 linear-300 sigmoid-300 sigmoid-500 sigmoid-1000
     cosine-500 cosine-1000 linear-500 quadratic-500 quadratic-1000)
models=("$@")
[ ${#models[@]} -eq 0 ] && models=("${ALL[@]}")

train() {
  local name=$1 prediction=epsilon schedule T
  case "$name" in
    trig-eps-*) schedule=trig ;;
    trig-joint-*) schedule=trig; prediction=joint ;;
    linear-eps-*) schedule=linear ;;   # the control: the same extra steps with the schedule unchanged
    linear-joint-*) schedule=linear; prediction=joint ;;
    *) schedule="${name%-*}" ;;
  esac
  T="${name##*-}"
  echo "== $name: $schedule, T=$T, $prediction, $STEPS steps"
  python scripts/train.py --dataset_name "$MNIST_NPZ" --resolution 28 --init_unet "$BASE" \
    --beta_schedule "$schedule" --num_train_timesteps "$T" --prediction_type "$prediction" \
    --train_batch_size 64 --max_train_steps "$STEPS" --learning_rate 5e-4 --lr_scheduler cosine --lr_warmup_steps 50 \
    --use_ema --ema_max_decay 0.995 --checkpointing_steps 250 --checkpoints_total_limit 1 \
    --num_card_samples 0 --report_to none --seed 0 --output_dir "$OUT/$name" \
    $(ls -d "$OUT/$name"/checkpoint-* >/dev/null 2>&1 && echo --resume_from_checkpoint latest)  # an interrupted model goes on
}

pids=()
failed() { echo "a model failed to train; see $OUT/logs/." >&2; exit 1; }
stop() { for pid in "${pids[@]}"; do pkill -TERM -P "$pid"; kill "$pid"; done 2>/dev/null || true; }
trap stop EXIT  # a failure or Ctrl-C stops the other trainings (each job's python) too
for name in "${models[@]}"; do
  if [ -f "$OUT/$name/model_index.json" ]; then echo "== $name: done already"; continue; fi
  if [ "$JOBS" -eq 1 ]; then train "$name"; continue; fi
  mkdir -p "$OUT/logs"
  echo "== $name: training, output in $OUT/logs/$name.log"
  train "$name" > "$OUT/logs/$name.log" 2>&1 &
  pids+=($!)
  if [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; then wait -n || failed; fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed; done  # every job's own status, finished or not
