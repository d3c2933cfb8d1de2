#!/usr/bin/env bash
# slurm-local.sh start|stop|status: a single-node Slurm cluster on this
# machine (slurmctld and slurmd as root, munge for authentication), for the
# tests of `bench slurm`. Installs Debian's slurm-wlm and munge when they
# are missing. Its state lives under $VITBENCH_SLURM_DIR (default
# /tmp/vitbench-slurm); stop kills only the daemons start started.
set -euo pipefail
dir=${VITBENCH_SLURM_DIR:-/tmp/vitbench-slurm}
conf=$dir/slurm.conf

install() {
	if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
		return
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "slurm-local: slurm-wlm and munge are missing; install them as root" >&2
		exit 1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
}

start() {
	install
	if [ -s "$conf" ] && SLURM_CONF=$conf sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
		echo "slurm-local: already up (SLURM_CONF=$conf)"
		return
	fi
	mkdir -p "$dir"/{state,spool,log,munge}
	chmod 700 "$dir/munge"
	if [ ! -s "$dir/munge/munge.key" ]; then
		dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
		chmod 400 "$dir/munge/munge.key"
	fi
	cpus=$(nproc)
	mem=$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)
	cat >"$conf" <<CONF
ClusterName=vitbench
SlurmctldHost=localhost
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldPort=16817
SlurmdPort=16818
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
	socket=$dir/munge/munge.socket
	munged --key-file="$dir/munge/munge.key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
		--log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" -f
	export SLURM_CONF=$conf
	# Slurm's munge plugin finds the socket through its config.
	sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$socket|" "$conf"
	slurmctld -f "$conf"
	slurmd -f "$conf"
	for _ in $(seq 1 50); do
		if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
			echo "slurm-local: up (SLURM_CONF=$conf)"
			return
		fi
		sleep 0.2
	done
	echo "slurm-local: the node did not come up; logs in $dir/log" >&2
	exit 1
}

stop() {
	for f in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
		if [ -s "$f" ]; then
			pid=$(cat "$f")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do # wait for it to exit, at most 10 s
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
			rm -f "$f"
		fi
	done
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) echo "usage: slurm-local.sh start|stop" >&2; exit 2 ;;
esac
