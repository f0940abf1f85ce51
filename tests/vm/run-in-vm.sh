#!/usr/bin/env bash
# run-in-vm.sh [options] [--] CMD [ARGS...]
#
# Runs CMD as root in a throw-away qemu guest booted from Debian's stock kernel. The
# guest sees this host's whole filesystem read-only (9p) under a tmpfs overlay, so
# writes vanish at exit except in directories given with --rw/--build-dir. Inside:
# configfs mounted, lo up, and configfs, nvmet, nvmet-tcp, nvme-core, nvme-fabrics,
# nvme-tcp, ext4 and loop loaded. CMD runs in the current directory with the current
# environment (plus LBCSI_IN_VM=1); its stdout and stderr come back merged on stdout.
#
# Exit status: CMD's, or 124 when the guest did not finish in time (qemu is killed),
# 125 when the VM failed around the command (the guest console's tail is printed),
# 77 when this host cannot run the VM at all (not root; 1 instead under CI=true).
#
# Options:
#   --build-dir DIR  make DIR writable in the guest and export LBCSI_BUILD_DIR=DIR
#   --rw DIR         make host DIR writable in the guest, at the same path (repeatable)
#   --timeout SECS   wall-time limit for the whole VM run (default 600)
#   --mem SIZE       guest memory (default 1G; qemu allocates it lazily)
#   --smp N          vCPUs (default 1: under TCG on 2 cores, 1 is faster than 2)
#   --accel A        auto|tcg|kvm (default auto: kvm only on a host with VT-x/SVM)
#   --modules "M.."  extra modules to modprobe in the guest before CMD (xfs, dm_crypt ...)
#   --verbose        stream the guest kernel console to stderr
#   --keep           keep the job dir (console.log, cmd.sh, rc) and print its path
# Env: LBCSI_VM_CACHE (see vm-prepare.sh), LBCSI_VM_DEBUG=1 (stage times on the console)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
timeout_s=600 mem=1G smp=1 accel=auto modules="" verbose=0 keep=0
shares=()
usage() { sed -n '2,28p' "$0" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) [[ $# -ge 2 ]] || usage; build_dir=$(realpath "$2"); shares+=("$build_dir")
      export LBCSI_BUILD_DIR=$build_dir; shift 2 ;;
    --rw) [[ $# -ge 2 ]] || usage; shares+=("$(realpath "$2")"); shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --mem) mem=${2:?}; shift 2 ;;
    --smp) smp=${2:?}; shift 2 ;;
    --accel) accel=${2:?}; shift 2 ;;
    --modules) modules=${2?}; shift 2 ;;
    --verbose) verbose=1; shift ;;
    --keep) keep=1; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    -*) echo "run-in-vm: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || usage
log() { echo "run-in-vm: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  # qemu must read every host file for the 9p root share, and the guest runs as root.
  if [[ ${CI:-} == true ]]; then
    log "FAIL: needs root (CI=true: a VM test may not be skipped)"
    exit 1
  fi
  log "SKIP: needs root (qemu exports / over 9p, apt installs qemu)"
  exit 77
fi

t0=$(date +%s.%N)
kdir=$("$here/vm-prepare.sh") || { log "vm-prepare.sh failed"; exit 125; }
# shellcheck source=/dev/null
. "$kdir/env"   # VM_KVER VM_KERNEL VM_INITRD VM_MODDIR
t_prep=$(date +%s.%N)

if [[ $accel == auto ]]; then
  # /dev/kvm is not enough: a KVM built on PVM (no VT-x/SVM in cpuinfo) cannot boot a
  # stock Debian kernel, so use it only when the CPU has hardware virtualisation.
  accel=tcg
  if [[ -r /dev/kvm && -w /dev/kvm && ! -d /sys/module/kvm_pvm ]] &&
    grep -qwE 'vmx|svm' /proc/cpuinfo; then
    accel=kvm
  fi
fi
cpu=max
[[ $accel == kvm ]] && cpu=host

# Job dirs of runs that were killed outright (SIGKILL leaves no chance to clean up).
for stale in /tmp/lbcsi-vm.*/owner; do
  [[ -e $stale ]] || continue
  owner=$(<"$stale")
  [[ -n $owner && -d /proc/$owner ]] || rm -rf "${stale%/owner}"
done
job=$(mktemp -d /tmp/lbcsi-vm.XXXXXX)
echo $$ >"$job/owner"
qemu_pid=""
cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -KILL "$qemu_pid" 2>/dev/null
    wait "$qemu_pid" 2>/dev/null
  fi
  if [[ $keep -eq 1 ]]; then log "job dir kept: $job"; else rm -rf "$job"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

cp "$here/guest/stage2.sh" "$job/stage2.sh"
: >"$job/shares"
fsargs=(
  -fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"
  -device "virtio-9p-pci,fsdev=root,mount_tag=lbcsi_root"
  -fsdev "local,id=job,path=$job,security_model=none,multidevs=remap"
  -device "virtio-9p-pci,fsdev=job,mount_tag=lbcsi_job"
)
i=0
for d in "${shares[@]}"; do
  [[ -d $d ]] || { log "not a directory: $d"; exit 125; }
  fsargs+=(-fsdev "local,id=rw$i,path=$d,security_model=none,multidevs=remap"
    -device "virtio-9p-pci,fsdev=rw$i,mount_tag=lbcsi_rw$i")
  echo "lbcsi_rw$i $d" >>"$job/shares"
  i=$((i + 1))
done
{
  printf 'JOB_DIR=%q\n' "$job"
  printf 'MODDIR=%q\n' "$VM_MODDIR"
  printf 'EXTRA_MODULES=%q\n' "$modules"
  printf 'DEBUG=%q\n' "${LBCSI_VM_DEBUG:-}"
} >"$job/config"
# The command's script: this shell's environment, directory and argv, quoted.
{
  echo '# written by run-in-vm.sh'
  while read -r name; do
    case $name in
      BASH*|SHELLOPTS|SHLVL|PWD|OLDPWD|_|TERM|HOSTNAME|SSH_*|DISPLAY|XDG_*|DBUS_*|TMUX*|LBCSI_VM_*) ;;
      *) printf 'export %s=%q\n' "$name" "${!name}" ;;
    esac
  done < <(compgen -e)
  echo 'export LBCSI_IN_VM=1'
  printf 'cd -- %q || exit 125\n' "$PWD"
  printf 'exec'
  printf ' %q' "$@"
  printf '\n'
} >"$job/cmd.sh"

if [[ $verbose -eq 1 ]]; then
  console=(-chardev "file,id=con,path=/dev/stderr,append=on")
else
  console=(-chardev "file,id=con,path=$job/console.log")
fi
append="console=ttyS0 8250.nr_uarts=2 panic=-1 oops=panic loglevel=4 mitigations=off"
# clocksource=hpet: TSC calibration under TCG on a busy host can be off by a factor of 3
# (guest time running fast would fire in-guest timeouts early); qemu's HPET follows
# the host clock.
append+=" random.trust_cpu=on tsc=reliable no_timer_check cryptomgr.notests clocksource=hpet"
append+=" lbcsi_vm.job=$job"
append+=" ${LBCSI_VM_APPEND:-}"

# qemu runs under `timeout` (the wall-time bound) and both die with this script:
# setpriv's parent-death signal kills each if its parent goes, even by SIGKILL.
setpriv --pdeathsig KILL -- timeout -k 5 "$timeout_s" \
  setpriv --pdeathsig KILL -- qemu-system-x86_64 \
  -accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" -M pc \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$VM_KERNEL" -initrd "$VM_INITRD" -append "$append" \
  "${console[@]}" -serial chardev:con \
  -chardev stdio,id=out,signal=off -serial chardev:out \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  "${fsargs[@]}" </dev/null &
qemu_pid=$!
wait "$qemu_pid"
qrc=$?
qemu_pid=""
t_end=$(date +%s.%N)

if [[ -s $job/rc ]]; then
  rc=$(cat "$job/rc")
elif [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
  log "TIMEOUT: the guest did not finish within ${timeout_s}s; qemu was killed"
  rc=124
else
  log "the guest did not report an exit status (qemu exit $qrc)"
  rc=125
fi
if [[ $verbose -eq 0 && ($rc -eq 124 || $rc -eq 125) ]]; then
  echo "---- guest console (last 60 lines) ----" >&2
  tail -n 60 "$job/console.log" >&2
fi
# Times on the host's clock: the guest writes t_start/t_end through 9p, so their mtimes
# are host time (boot = qemu start to command start, including qemu loading the kernel).
mtime() { stat -c %.9Y "$1" 2>/dev/null || echo ""; }
awk -v p="$t0" -v q="$t_prep" -v e="$t_end" -v s="$(mtime "$job/t_start")" \
  -v f="$(mtime "$job/t_end")" -v rc="$rc" -v k="$VM_KVER" -v a="$accel" '
  function span(x, y) { return (x == "" || y == "") ? "?" : sprintf("%.2f", y - x) }
  BEGIN { printf "run-in-vm: kernel %s (%s): prepare %.2fs, boot %ss, command %ss, VM wall %.2fs, total %.2fs, rc %s\n",
                 k, a, q - p, span(q, s), span(s, f), e - q, e - p, rc }' >&2
exit "$rc"
