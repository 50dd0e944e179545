#!/usr/bin/env bash
# .ci/slurm/start.sh - start a one-node Slurm cluster on 127.0.0.1 for the `slurm` tests.
#
# Installs Debian's slurm-wlm and munge when they are missing (apt-get; needs root), writes
# /etc/slurm/slurm.conf and gres.conf (marked as written by this script; a slurm.conf written
# by anyone else is never touched), and starts munged, slurmctld and slurmd. The node has the
# machine's CPUs and memory (from `slurmd -C`) and one fake `gpu` generic resource, so jobs
# that ask for `--gres gpu:1` (py-sbatch.sh, grid-submit) are scheduled on a machine without
# a GPU. No accounting: sacct is not available, job states come from scontrol/squeue.
#
# Running it again while the cluster answers does nothing. .ci/slurm/stop.sh undoes it all.
# Settings (environment):
#   HW2_SLURM_STATE [/var/tmp/hw2-slurm]  state, spool, logs and the fake GPU device
#   HW2_SLURM_CRED_EXPIRE [10]            seconds; a requeued job waits about this long
#                                         (plus a scheduling pass) before it starts again
set -euo pipefail

STATE=${HW2_SLURM_STATE:-/var/tmp/hw2-slurm}
CRED_EXPIRE=${HW2_SLURM_CRED_EXPIRE:-10}
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARK="# written by hw2 .ci/slurm/start.sh"
NODE=hw2node
t0=$(date +%s%N)

say() { echo "slurm/start.sh: $*"; }
die() { echo "slurm/start.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (it installs packages and starts slurmd)"
if [[ -e "$STATE" && ! -f "$STATE/.hw2-slurm-state" ]]; then
    die "$STATE exists and was not made by this script: set HW2_SLURM_STATE to a new folder"
fi

ours() { [[ -f "$1" ]] && head -n 1 "$1" | grep -qF "$MARK"; }

cluster_answers() {
    ours "$CONF" && scontrol ping 2>/dev/null | grep -q "is UP" &&
        [[ "$(sinfo -h -n "$NODE" -o %t 2>/dev/null)" =~ ^(idle|mix|alloc)$ ]]
}

# -- packages ---------------------------------------------------------------------------------
missing=()
for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if (( ${#missing[@]} )); then
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -q --no-install-recommends slurm-wlm munge >"$1" 2>&1; }
    mkdir -p "$STATE" && touch "$STATE/.hw2-slurm-state"
    if ! apt_install "$STATE/apt-install.log"; then
        say "apt-get install failed; running apt-get update and trying again"
        apt-get update -q >"$STATE/apt-update.log" 2>&1 || die "apt-get update failed: see $STATE/apt-update.log"
        apt_install "$STATE/apt-install.log" || die "apt-get install failed: see $STATE/apt-install.log"
    fi
fi

if cluster_answers; then
    say "already running ($(sinfo -h -o '%P %D %t' | head -n 1))"
    exit 0
fi
if [[ -f "$CONF" ]] && ! ours "$CONF"; then
    die "$CONF exists and was not written by this script: refusing to replace a real configuration"
fi
# Leftovers of an earlier start (a daemon that died, a half-started cluster): clear them.
"$(dirname "$0")/stop.sh" --quiet

mkdir -p "$STATE"/{ctld,slurmd,log,dev}
touch "$STATE/.hw2-slurm-state"  # stop.sh removes only a folder that holds this file
chmod 755 "$STATE"

# -- munge ------------------------------------------------------------------------------------
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/munged.ours"  # stop.sh stops munged only when this script started it
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null | unmunge >/dev/null || die "munged does not answer"
fi

# -- configuration ----------------------------------------------------------------------------
# `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105": keep the sizes.
node_sizes=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
[[ "$node_sizes" == *CPUs=* ]] || die "cannot size the node from 'slurmd -C': $node_sizes"
host=$(hostname -s)

# A character device with /dev/null's numbers stands in for the GPU; nothing opens it.
rm -f "$STATE/dev/gpu0"
mknod -m 666 "$STATE/dev/gpu0" c 1 3

mkdir -p /etc/slurm
cat >"$GRES_CONF" <<EOF
$MARK; removed by stop.sh
AutoDetect=off
NodeName=$NODE Name=gpu File=$STATE/dev/gpu0
EOF

cat >"$CONF" <<EOF
$MARK; removed by stop.sh
# A one-node cluster on 127.0.0.1 for hw2's tests: no cgroups, no accounting, one fake GPU.
ClusterName=hw2ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# How long a job credential lives; also how long a requeued job waits before it restarts.
AuthInfo=cred_expire=$CRED_EXPIRE
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# Pending jobs (a requeued one whose wait is over) are looked at every 2 s, not every 30-60 s.
SchedulerParameters=bf_interval=2,sched_interval=2
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 $node_sizes Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# -- daemons ----------------------------------------------------------------------------------
slurmctld -c  # -c: a clean start, no jobs from an earlier cluster
slurmd -N "$NODE"

for _ in $(seq 300); do
    cluster_answers && break
    sleep 0.1
done
if ! cluster_answers; then
    echo "--- slurmctld.log" >&2; tail -n 20 "$STATE/log/slurmctld.log" >&2 || true
    echo "--- slurmd.log" >&2; tail -n 20 "$STATE/log/slurmd.log" >&2 || true
    die "the cluster did not come up within 30 s (node state: $(sinfo -h -n "$NODE" -o %t 2>&1))"
fi
say "cluster up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(sinfo -h -N -o '%N %P %c CPUs %G %t')"
