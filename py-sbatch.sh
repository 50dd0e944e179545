#!/usr/bin/env bash
# py-sbatch.sh - run one python command as a Slurm batch job, inside the course's conda env.
#
# Usage:
#   ./py-sbatch.sh PYTHON_ARGS...
#
# submits a job that activates the conda environment, changes to the directory you submitted
# from and runs `python PYTHON_ARGS...` (each argument passed on exactly, spaces included).
# Examples:
#   ./py-sbatch.sh -m hw2.experiments run-exp -n exp1_1 -K 32 -L 2 -P 1 -H 100
#   ./py-sbatch.sh -m hw2.experiments grid-run exp1_3      # a whole grid, one run after another
#   JOB_NAME=exp2 TIME_LIMIT=08:00:00 ./py-sbatch.sh -m hw2.experiments grid-run exp2
#
# The job asks for 1 node, 2 CPU cores and 1 GPU: what one training run can use (the course
# asks not to request more). Settings come from environment variables (default in brackets):
#   JOB_NAME   [hw2]             job name, also in the log file name
#   NUM_CORES  [2]               CPU cores
#   NUM_GPUS   [1]               GPUs
#   PARTITION  []                Slurm partition (empty: the cluster's default)
#   TIME_LIMIT []                e.g. 04:00:00 (empty: the partition's default)
#   MAIL_USER  []                e-mail for notifications (empty: none)
#   MAIL_TYPE  [END,FAIL]        when to send them (NONE, BEGIN, END, FAIL, ALL)
#   CONDA_HOME [$HOME/miniconda3] conda installation
#   CONDA_ENV  [cs236781-hw2]    environment to activate (see environment.yml)
#   LOG_DIR    [logs]            where slurm-JOBNAME-JOBID.out goes
#   DRY_RUN    []                1: print the sbatch command and the job script, submit nothing
set -euo pipefail

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ $# -eq 0 ]] && exit 2 || exit 0
fi

JOB_NAME=${JOB_NAME:-hw2}
NUM_CORES=${NUM_CORES:-2}
NUM_GPUS=${NUM_GPUS:-1}
PARTITION=${PARTITION:-}
TIME_LIMIT=${TIME_LIMIT:-}
MAIL_USER=${MAIL_USER:-}
MAIL_TYPE=${MAIL_TYPE:-END,FAIL}
CONDA_HOME=${CONDA_HOME:-$HOME/miniconda3}
CONDA_ENV=${CONDA_ENV:-cs236781-hw2}
LOG_DIR=${LOG_DIR:-logs}
WORK_DIR=$(pwd)

sbatch_args=(
    --nodes 1
    --cpus-per-task "$NUM_CORES"
    --gres "gpu:$NUM_GPUS"
    --job-name "$JOB_NAME"
    --output "$LOG_DIR/slurm-%x-%j.out"
)
[[ -n "$PARTITION" ]] && sbatch_args+=(--partition "$PARTITION")
[[ -n "$TIME_LIMIT" ]] && sbatch_args+=(--time "$TIME_LIMIT")
[[ -n "$MAIL_USER" ]] && sbatch_args+=(--mail-user "$MAIL_USER" --mail-type "$MAIL_TYPE")

# The python command line, every argument shell-quoted so that it survives the job script.
python_cmd="python"
for arg in "$@"; do
    python_cmd+=" $(printf '%q' "$arg")"
done

# Variables written as \$NAME are expanded when the job runs, the others now.
job_script=$(cat <<EOF
#!/bin/bash
set -eo pipefail
echo "*** job $JOB_NAME (\$SLURM_JOB_ID) starting on \$(hostname) at \$(date) ***"
echo "*** activating conda environment $CONDA_ENV ***"
source $(printf '%q' "$CONDA_HOME")/etc/profile.d/conda.sh
conda activate $(printf '%q' "$CONDA_ENV")
cd $(printf '%q' "$WORK_DIR")
echo "*** running: $python_cmd ***"
$python_cmd
echo "*** job $JOB_NAME (\$SLURM_JOB_ID) done at \$(date) ***"
EOF
)

if [[ -n "${DRY_RUN:-}" && "${DRY_RUN}" != "0" ]]; then
    printf 'sbatch'
    printf ' %q' "${sbatch_args[@]}"
    printf '\n%s\n' "$job_script"
    exit 0
fi

if ! command -v sbatch >/dev/null 2>&1; then
    echo "py-sbatch.sh: sbatch not found: run this on a Slurm login node (DRY_RUN=1 shows the job)" >&2
    exit 2
fi
mkdir -p "$LOG_DIR"
printf '%s\n' "$job_script" | sbatch "${sbatch_args[@]}"
