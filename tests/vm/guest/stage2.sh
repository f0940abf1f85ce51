# stage2.sh: sourced by the guest's /init (busybox sh, PID 1) from the job share.
# Builds the guest's root: the host's / over 9p (read-only) under a tmpfs overlay,
# mounts the pseudo filesystems in it, loads the NVMe modules, brings up lo, then runs
# the job's command chrooted there with stdout+stderr on ttyS1. Its exit status goes
# to $JOB/rc on the job share before the VM stops.
. /job/config   # JOB_DIR MODDIR EXTRA_MODULES DEBUG (written by run-in-vm.sh)
uptime_s() { cut -d' ' -f1 /proc/uptime; }
note() { [ -n "$DEBUG" ] && echo "lbcsi-vm guest: $(uptime_s) $*" >/dev/ttyS0; }
note "stage2"

# Modules built into the initramfs. Optional CPU-specific ones (crct10dif-pclmul) may
# fail on some CPU models: warn, then insist only on the ones the tests need.
for m in $(cat /eager.modules); do
  insmod "/mods/$m" 2>/dev/null || echo "lbcsi-vm guest: warning: insmod $m failed" >/dev/ttyS0
done
for m in configfs nvmet nvmet_tcp nvme_core nvme_fabrics nvme_tcp; do
  [ -d "/sys/module/$m" ] || vm_fail "module $m is not loaded"
done
note "modules loaded"

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose lbcsi_root /lower ||
  vm_fail "cannot mount the host root share"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
  vm_fail "overlay mount failed"
R=/newroot
mkdir -p "$R$JOB_DIR"
mount --move /job "$R$JOB_DIR" || vm_fail "cannot move the job share"
# Host directories that writes must reach (the build dir, results): "tag path" lines.
while read -r tag path; do
  [ -n "$tag" ] || continue
  mkdir -p "$R$path"
  # cache=mmap: read()/write() stay uncached (the host sees writes at once), but mapped
  # files (the binaries exec'd from the build dir) get the page cache and readahead;
  # without it every 4 KiB page fault is one 9p round trip.
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=mmap "$tag" "$R$path" ||
    vm_fail "cannot mount share $tag at $path"
done <"$R$JOB_DIR/shares"

# No udev: devtmpfs creates the nodes (nvme*, loop*) by itself.
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t devtmpfs devtmpfs "$R/dev"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
ln -sfn /proc/self/fd "$R/dev/fd"
ln -sfn fd/0 "$R/dev/stdin"
ln -sfn fd/1 "$R/dev/stdout"
ln -sfn fd/2 "$R/dev/stderr"
mount -t configfs configfs "$R/sys/kernel/config" || vm_fail "cannot mount configfs"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup" 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -p "$R/run/lock"
mount -t tmpfs -o mode=1777 tmpfs "$R/var/tmp"

# The host does not have this kernel's modules: show the unpacked tree at the usual
# place, and send the kernel's module autoload requests (fs-xfs, dm-crypt, ...) to
# modprobe in the new root, since the initramfs root has none.
kver=$(uname -r)
if [ ! -e "$R/lib/modules/$kver/modules.dep" ]; then
  mkdir -p "$R/lib/modules/$kver"
  mount --bind "$R$MODDIR" "$R/lib/modules/$kver" || vm_fail "cannot bind the module tree"
fi
printf '#!/bin/sh\nexec chroot /newroot /sbin/modprobe "$@"\n' >/bin/lbcsi-modprobe
chmod 755 /bin/lbcsi-modprobe
echo /bin/lbcsi-modprobe >/proc/sys/kernel/modprobe
# /dev/loop-control exists only once the module is in; it is built in the initramfs set.
for m in $EXTRA_MODULES; do
  chroot "$R" /sbin/modprobe "$m" || vm_fail "modprobe $m failed"
done

ip link set lo up || vm_fail "cannot bring up lo"
hostname lbcsi-vm
note "root ready"

stty -F /dev/ttyS1 raw -echo 2>/dev/null
uptime_s >"$R$JOB_DIR/t_start"
# Through a pipe, so the command's stdout is not a terminal (no colours, no prompts),
# as on the host under ctest.
set -o pipefail   # busybox ash has it
chroot "$R" /bin/bash "$JOB_DIR/cmd.sh" </dev/null 2>&1 | cat >/dev/ttyS1
rc=$?
uptime_s >"$R$JOB_DIR/t_end"
echo "$rc" >"$R$JOB_DIR/rc"
sync
vm_exit "$rc"
