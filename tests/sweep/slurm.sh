#!/usr/bin/env bash
# A throwaway single-node SLURM cluster for the sweep tests (tests/cli/sweep.rs).
#   tests/sweep/slurm.sh start DIR   writes DIR/slurm.conf, starts munged (if none runs),
#                                    slurmctld and slurmd; waits until the node is idle
#   tests/sweep/slurm.sh stop DIR    stops what `start` started (pid files in DIR)
# Clients need SLURM_CONF=DIR/slurm.conf. Needs root (SlurmUser=root, munged as `munge`) and the
# Debian packages slurm-wlm and munge (installed by .ci/run). Exit status 3: cannot start here
# (the reason is printed).
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?DIR}")

stop_pid() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; rm -f "$1"; }

if [ "$cmd" = stop ]; then
  stop_pid "$dir/slurmd.pid"
  stop_pid "$dir/slurmctld.pid"
  if [ -f "$dir/munged.started" ]; then stop_pid /run/munge/munged.pid; rm -f "$dir/munged.started"; fi
  exit 0
fi

for b in slurmctld slurmd sbatch squeue scontrol munged munge unmunge; do
  command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$b" >/dev/null 2>&1 || { echo "SLURM unavailable: $b not installed (apt-get install slurm-wlm munge)"; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "SLURM unavailable: starting slurmctld/slurmd/munged here needs root"; exit 3; }

mkdir -p "$dir/state" "$dir/spool"
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  [ -f /etc/munge/munge.key ] || { echo "SLURM unavailable: no /etc/munge/munge.key"; exit 3; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  su -s /bin/sh munge -c /usr/sbin/munged
  touch "$dir/munged.started"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
port=$((20000 + ($$ % 5000) * 2))
cat > "$dir/slurm.conf" <<CONF
ClusterName=cortexfit-test
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
# A requeued task may start again after cred_expire seconds (default 120).
AuthInfo=cred_expire=5
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then echo "SLURM up: $SLURM_CONF"; exit 0; fi
  sleep 0.2
done
echo "SLURM unavailable: the node did not become idle within 20 s (logs in $dir)"
"$0" stop "$dir"
exit 3
