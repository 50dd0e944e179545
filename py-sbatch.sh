#!/usr/bin/env bash
# py-sbatch.sh - run one python command as a Slurm batch job.
#
# Usage:
#   ./py-sbatch.sh PYTHON_ARGS...
#
# submits a job that changes to the directory you submitted from and runs
# `python PYTHON_ARGS...` (each argument passed on exactly, spaces included).
# Examples:
#   ./py-sbatch.sh -m hw2.experiments run-exp -n exp1_1 -K 32 -L 2 -P 1 -H 100
#   ./py-sbatch.sh -m hw2.experiments grid-run exp1_3      # a whole grid, one run after another
#   JOB_NAME=exp2 TIME_LIMIT=08:00:00 ./py-sbatch.sh -m hw2.experiments grid-run exp2
#
# Which python the job runs, decided when you submit (the job log's first line names it):
#   1. $PYTHON when it is set (a path, or a name looked up on PATH now);
#   2. else, when CONDA_ENV is set and conda is installed (CONDA_HOME/etc/profile.d/conda.sh),
#      the `python` of that conda environment, activated in the job (the course's setup:
#      CONDA_ENV=cs236781-hw2);
#   3. else the `python3` on PATH now, e.g. that of an activated venv or conda environment.
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
#   PYTHON     []                the interpreter to run (see above)
#   CONDA_ENV  []                conda environment to activate in the job (see above)
#   CONDA_HOME [from $CONDA_EXE, else $HOME/miniconda3]  conda installation
#   LOG_DIR    [logs]            where slurm-JOBNAME-JOBID.out goes
#   DRY_RUN    []                1: print the sbatch command and the job script, submit nothing
# Other sbatch options through sbatch's own variables, e.g. SBATCH_OPEN_MODE=append.
set -euo pipefail

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ $# -eq 0 ]] && exit 2 || exit 0
fi

usage_error() { echo "py-sbatch.sh: $*" >&2; exit 2; }

JOB_NAME=${JOB_NAME:-hw2}
NUM_CORES=${NUM_CORES:-2}
NUM_GPUS=${NUM_GPUS:-1}
PARTITION=${PARTITION:-}
TIME_LIMIT=${TIME_LIMIT:-}
MAIL_USER=${MAIL_USER:-}
MAIL_TYPE=${MAIL_TYPE:-END,FAIL}
PYTHON=${PYTHON:-}
CONDA_ENV=${CONDA_ENV:-}
if [[ -z "${CONDA_HOME:-}" ]]; then
    if [[ -n "${CONDA_EXE:-}" ]]; then
        CONDA_HOME=$(dirname "$(dirname "$CONDA_EXE")")  # .../miniconda3/bin/conda
    else
        CONDA_HOME=$HOME/miniconda3
    fi
fi
LOG_DIR=${LOG_DIR:-logs}
WORK_DIR=$(pwd)

[[ "$NUM_CORES" =~ ^[1-9][0-9]*$ ]] || usage_error "NUM_CORES must be a positive integer, got '$NUM_CORES'"
[[ "$NUM_GPUS" =~ ^[0-9]+$ ]] || usage_error "NUM_GPUS must be an integer >= 0, got '$NUM_GPUS'"

# An absolute path for an interpreter given as a path or a name; empty when it is not one.
resolve_python() {
    local found
    if [[ "$1" == */* ]]; then
        found=$1
        [[ "$found" == /* ]] || found=$WORK_DIR/$found
    else
        found=$(command -v -- "$1" 2>/dev/null) || return 0
    fi
    [[ -f "$found" && -x "$found" ]] && echo "$found"
    return 0
}

# -- which python the job runs ----------------------------------------------------------------
conda_sh=$CONDA_HOME/etc/profile.d/conda.sh
if [[ -n "$PYTHON" ]]; then
    python_bin=$(resolve_python "$PYTHON")
    [[ -n "$python_bin" ]] || usage_error "PYTHON='$PYTHON' is not an executable file (nor a command on PATH)"
    python_from="\$PYTHON"
elif [[ -n "$CONDA_ENV" && -f "$conda_sh" ]]; then
    python_bin=python
    python_from="conda environment $CONDA_ENV of $CONDA_HOME"
else
    if [[ -n "$CONDA_ENV" ]]; then
        echo "py-sbatch.sh: CONDA_ENV=$CONDA_ENV is set but there is no $conda_sh (set CONDA_HOME);" \
             "using python3 from PATH" >&2
    fi
    python_bin=$(resolve_python python3)
    [[ -n "$python_bin" ]] || usage_error "no python3 on PATH: activate an environment, or set PYTHON or CONDA_ENV"
    python_from="python3 on PATH at submission"
fi

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
python_cmd=$(printf '%q' "$python_bin")
for arg in "$@"; do
    python_cmd+=" $(printf '%q' "$arg")"
done

# The job script: the values fixed now are assigned first (shell-quoted), then used at run time.
q() { printf '%q' "$1"; }
job_script="#!/bin/bash
set -eo pipefail
job_name=$(q "$JOB_NAME")
python_from=$(q "$python_from")
python_bin=$(q "$python_bin")
echo \"*** job \$job_name (\$SLURM_JOB_ID) starting on \$(hostname) at \$(date): python from \$python_from: \$python_bin ***\""
if [[ "$python_bin" == python ]]; then
    job_script+="
source $(q "$conda_sh")
conda activate $(q "$CONDA_ENV")"
fi
job_script+="
cd $(q "$WORK_DIR")
command_line=$(q "$python_cmd")
echo \"*** running: \$command_line ***\"
$python_cmd
echo \"*** job \$job_name (\$SLURM_JOB_ID) done at \$(date) ***\""

if [[ -n "${DRY_RUN:-}" && "${DRY_RUN}" != "0" ]]; then
    printf 'sbatch'
    printf ' %q' "${sbatch_args[@]}"
    printf '\n%s\n' "$job_script"
    exit 0
fi

if ! command -v sbatch >/dev/null 2>&1; then
    usage_error "sbatch not found: run this on a Slurm login node (DRY_RUN=1 shows the job)"
fi
mkdir -p "$LOG_DIR"
printf '%s\n' "$job_script" | sbatch "${sbatch_args[@]}"
