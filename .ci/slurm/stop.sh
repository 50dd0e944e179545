#!/usr/bin/env bash
# .ci/slurm/stop.sh - stop the cluster of .ci/slurm/start.sh and remove what it left.
#
# Cancels every job of that cluster, stops slurmd and slurmctld (and munged when start.sh
# started it), removes the configuration files start.sh wrote and its state folder. Safe to
# run when nothing is running. The packages stay installed. --quiet: print nothing when
# there was nothing to stop.
set -uo pipefail

STATE=${HW2_SLURM_STATE:-/var/tmp/hw2-slurm}
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARK="# written by hw2 .ci/slurm/start.sh"
quiet=0
[[ "${1:-}" == "--quiet" ]] && quiet=1

say() { (( quiet )) || echo "slurm/stop.sh: $*"; }
ours() { [[ -f "$1" ]] && head -n 1 "$1" | grep -qF "$MARK"; }

# A daemon of this cluster, by the pid in its pid file, if it is alive and is that program.
alive_pid() {  # alive_pid PIDFILE PROGRAM
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] &&
        running "$pid" && echo "$pid"
}

# Whether a process exists and is not a zombie (an exited daemon nobody has reaped yet).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat:0:1}" != Z ]]
}

stop_daemon() {  # stop_daemon PIDFILE PROGRAM
    local pid
    pid=$(alive_pid "$1" "$2") || return 0
    echo "slurm/stop.sh: stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        running "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

if ours "$CONF" && scontrol ping 2>/dev/null | grep -q "is UP"; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
    if [[ -n "$jobs" ]]; then
        say "cancelling jobs: $(echo $jobs)"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 150); do
            [[ -z "$(squeue -h -t running,completing -o %A 2>/dev/null)" ]] && break
            sleep 0.1
        done
    fi
fi

stop_daemon "$STATE/slurmd.pid" slurmd
stop_daemon "$STATE/slurmctld.pid" slurmctld
if [[ -f "$STATE/munged.ours" ]]; then
    stop_daemon /run/munge/munged.pid munged
fi

for f in "$CONF" "$GRES_CONF"; do
    if ours "$f"; then
        rm -f "$f"
    fi
done
# The folder only when start.sh made it (it holds start.sh's mark file).
if [[ -f "$STATE/.hw2-slurm-state" ]]; then
    rm -rf "$STATE"
    say "removed $STATE"
fi
exit 0
