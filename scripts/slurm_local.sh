#!/usr/bin/env bash
# A real single-node SLURM for tests and CI, from Debian's packages (the recipe of
# ../shared/SLURM.md). Run as root.
#
#   scripts/slurm_local.sh start          # prints the base folder; then: source <base>/env.sh
#   scripts/slurm_local.sh stop [BASE]    # BASE defaults to $SLURM_BASE
#
# start installs slurmctld, slurmd, slurm-client and munge if missing, makes a fresh base folder
# ($SLURM_BASE, or a new temp dir) with slurm.conf, an sacct stand-in in bin/ and env.sh, starts
# munged (if not running), slurmctld and slurmd with their pids in run/, waits for the node to
# be idle and prints the base folder (that of the running cluster if this script started one
# already). stop cancels every job, then kills exactly the pids in run/ (munged only if start
# started it) and waits for them to exit. Both are safe to call twice.
set -euo pipefail

PKGS=(slurmctld slurmd slurm-client munge)
die() { echo "error: $*" >&2; exit 1; }

install_packages() { "$(dirname "$0")/apt_install.sh" "${PKGS[@]}"; }   # missing ones only, apt-get update when needed

write_conf() {  # $1 = base
  local b=$1 mem
  mem=$(awk '/MemTotal/ {printf "%d", $2 * 0.85 / 1024}' /proc/meminfo)
  cat >"$b/etc/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation=$b/state/ctld
SlurmdSpoolDir=$b/state/d
SlurmctldPidFile=$b/run/slurmctld.pid
SlurmdPidFile=$b/run/slurmd.pid
SlurmctldLogFile=$b/log/slurmctld.log
SlurmdLogFile=$b/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
DependencyParameters=kill_invalid_depend
MinJobAge=3600
KillWait=5
DefMemPerCPU=1000
NodeName=localhost CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  # No accounting database: submitit polls job states through sacct, so answer from squeue.
  cat >"$b/bin/sacct" <<'EOF'
#!/usr/bin/env bash
# sacct stand-in (no accounting database): JobID|State|NodeList for each -j/--jobs id, from squeue.
ids=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j|--jobs) ids+=("${2:-}"); shift 2 || shift ;;
    -j*) ids+=("${1#-j}"); shift ;;
    --jobs=*) ids+=("${1#--jobs=}"); shift ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
for list in "${ids[@]}"; do
  IFS=, read -ra one <<<"$list"
  for id in "${one[@]}"; do squeue -h -a --states=all -j "$id" -o "%i|%T|%N" 2>/dev/null || true; done
done
EOF
  chmod +x "$b/bin/sacct"
  cat >"$b/env.sh" <<EOF
# source me: the local test cluster's config and the sacct stand-in first on PATH
export SLURM_BASE=$b
export SLURM_CONF=$b/etc/slurm.conf
export PATH="$b/bin:\$PATH"
EOF
}

start_munge() {  # $1 = base; records munged's pid in run/munged.pid only if we start it
  local b=$1 i
  if munge -n </dev/null >/dev/null 2>&1; then return 0; fi
  [ -f /etc/munge/munge.key ] || runuser -u munge -- mungekey --create >/dev/null
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 || die "munged did not start"
  for i in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n </dev/null >/dev/null 2>&1 || die "munged started but munge -n fails"
  cp /run/munge/munged.pid "$b/run/munged.pid"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# kill_pidfiles BASE NAME...: kill each saved pid run/NAME.pid that is still NAME, wait for all
kill_pidfiles() {
  local b=$1 name pid pids=() i p left
  shift
  for name in "$@"; do
    pid=$(cat "$b/run/$name.pid" 2>/dev/null || true)
    if alive "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
      kill "$pid" 2>/dev/null || true; pids+=("$pid")
    fi
    rm -f "$b/run/$name.pid"
  done
  for i in $(seq 150); do
    left=(); for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && return 0
    [ "$i" -eq 100 ] && { kill -9 "${left[@]}" 2>/dev/null || true; }   # 10 s: no more waiting
    sleep 0.1
  done
}

cmd_stop() {
  local b=${1:-${SLURM_BASE:-}} i
  [ -n "$b" ] || die "stop: give the base folder (or set SLURM_BASE)"
  [ -f "$b/etc/slurm.conf" ] || { echo "nothing to stop in $b" >&2; return 0; }
  export SLURM_CONF=$b/etc/slurm.conf
  if alive "$(cat "$b/run/slurmctld.pid" 2>/dev/null || true)"; then
    scancel --full --quiet --user=root 2>/dev/null || true
    for i in $(seq 100); do   # let slurmd end the job steps (KillWait=5) before it goes
      [ -z "$(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null)" ] && break; sleep 0.2
    done
  fi
  kill_pidfiles "$b" slurmd slurmctld munged
  echo "stopped the cluster in $b" >&2
}

cmd_start() {
  local b t0 i
  install_packages
  if pid=$(pgrep -x slurmctld | head -1) && [ -n "$pid" ]; then   # started before: reuse it
    b=$(tr '\0' '\n' </proc/"$pid"/cmdline | sed -n 's#/etc/slurm.conf$##p' | head -1)
    [ -n "$b" ] && [ -f "$b/env.sh" ] && [ "$(cat "$b/run/slurmctld.pid" 2>/dev/null)" = "$pid" ] \
      || die "a slurmctld not started by this script is running (pid $pid): stop it first"
    [ -z "${SLURM_BASE:-}" ] || [ "$SLURM_BASE" -ef "$b" ] || die "a cluster from $b is already running: stop it first"
    echo "already running: source $b/env.sh" >&2
    echo "$b"; return 0
  fi
  b=${SLURM_BASE:-$(mktemp -d /tmp/slurm_local.XXXXXX)}
  b=$(cd "$b" 2>/dev/null && pwd || { mkdir -p "$b" && cd "$b" && pwd; })
  [ -f "$b/env.sh" ] || [ -z "$(ls -A "$b")" ] || die "SLURM_BASE=$b is neither empty nor a slurm_local.sh base"
  rm -rf "${b:?}"/{etc,state,log,run,bin,env.sh}
  mkdir -p "$b"/{etc,state/ctld,state/d,log,run,bin}
  write_conf "$b"
  export SLURM_CONF=$b/etc/slurm.conf
  t0=$(date +%s.%N)
  start_munge "$b"
  slurmctld -D -f "$SLURM_CONF" </dev/null >>"$b/log/slurmctld.out" 2>&1 &
  echo $! >"$b/run/slurmctld.pid"
  slurmd -D -N localhost -f "$SLURM_CONF" </dev/null >>"$b/log/slurmd.out" 2>&1 &
  echo $! >"$b/run/slurmd.pid"
  for i in $(seq 150); do
    [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] && break; sleep 0.2
  done
  if [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" != idle ]; then
    echo "error: the node did not become idle in 30 s (sinfo: $(sinfo -h -n localhost -o %T 2>&1 | head -1))" >&2
    tail -n 20 "$b"/log/* >&2 || true
    cmd_stop "$b" 2>/dev/null
    exit 1
  fi
  echo "cluster up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s: source $b/env.sh" >&2
  echo "$b"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop "${2:-}" ;;
  *) die "usage: $0 start | stop [BASE]" ;;
esac
