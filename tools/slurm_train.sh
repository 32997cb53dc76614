#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SIGNAL_TIME=300] [SRUN_ARGS=...] \
#        tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py arguments]
# SLURM sends SIGTERM SIGNAL_TIME seconds before the time limit (and on preemption, before
# SIGKILL): the run saves where it is and exits; resubmit with --resume.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SIGNAL_TIME=${SIGNAL_TIME:-300}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK_DIR_ARGS=()
if [[ $# -ge 4 && $4 != --* ]]; then
    WORK_DIR_ARGS=(--work-dir "$4")
    shift
fi

PYTHONPATH="$ROOT:${PYTHONPATH:-}" srun -p "$PARTITION" --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 --signal=TERM@"$SIGNAL_TIME" \
    $SRUN_ARGS python -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "${WORK_DIR_ARGS[@]}" "${@:4}"
