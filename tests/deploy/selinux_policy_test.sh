#!/usr/bin/env bash
# Builds selinux/lbcsi_helper.pp with Debian's selinux-policy-dev, links it (with a
# test-only stand-in for the container module) into a copy of the installed
# selinux-policy-default store, and asks sesearch what lbcsi_helper_t may and may not do.
# Usage: selinux_policy_test.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
rm -rf "$work" && mkdir -p "$work/build"
fail=0
check() {  # check <description> <expect: some|none> sesearch-args...
  local what=$1 expect=$2
  shift 2
  local out
  out=$(sesearch "$@" "$policy" 2>&1) || { echo "FAIL $what: sesearch error: $out"; fail=1; return; }
  if [[ $expect == some && -z $out ]]; then
    echo "FAIL $what: expected a rule for: sesearch $*"; fail=1
  elif [[ $expect == none && -n $out ]]; then
    echo "FAIL $what: expected no rule, found:"; echo "$out" | sed 's/^/    /'; fail=1
  else
    echo "ok   $what"
  fi
}

for tool in make sesearch semodule; do
  command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/install-deps)"; exit 1; }
done
[[ -f /usr/share/selinux/devel/Makefile ]] || { echo "FAIL: selinux-policy-dev missing"; exit 1; }
[[ -d /var/lib/selinux/default ]] || { echo "FAIL: selinux-policy-default store missing"; exit 1; }

cp "$src"/selinux/lbcsi_helper.{te,if,fc} "$src"/tests/deploy/lbcsi_test_container_stub.te \
  "$work/build/"
(cd "$work/build" && make -s -f /usr/share/selinux/devel/Makefile \
  lbcsi_helper.pp lbcsi_test_container_stub.pp >make.log 2>&1) \
  || { cat "$work/build/make.log"; echo "FAIL: module build"; exit 1; }

root=$work/root
mkdir -p "$root/var/lib/selinux" "$root/etc/selinux"
cp -a /var/lib/selinux/default "$root/var/lib/selinux/"
cp -a /etc/selinux/default "$root/etc/selinux/"
rm -f "$root/etc/selinux/default/policy/"policy.*
# -n: build the policy in the alternate root only; never load anything into a kernel.
semodule -p "$root" -s default -n -i "$work/build/lbcsi_helper.pp" \
  "$work/build/lbcsi_test_container_stub.pp" 2>&1 | grep -v "not in password file" || true
policy=$(ls "$root"/etc/selinux/default/policy/policy.* 2>/dev/null | head -1)
[[ -n $policy ]] || { echo "FAIL: semodule produced no binary policy"; exit 1; }
echo "linked policy: $policy"

d=lbcsi_helper_t
# What the helper needs.
check "init starts the helper in its domain" some -T -s init_t -t lbcsi_helper_exec_t -c process
check "serves its socket" some -A -s $d -t lbcsi_helper_runtime_t -c sock_file -p create
check "keeps its state" some -A -s $d -t lbcsi_helper_var_lib_t -c file -p write
check "writes /dev/nvme-fabrics" some -A -s $d -t lbcsi_nvmf_device_t -c chr_file -p write
check "reads and writes NVMe block devices" some -A -s $d -t fixed_disk_device_t -c blk_file -p read,write
check "writes sysfs (rescan, delete controller)" some -A -s $d -t sysfs_t -c file -p write
check "mounts ext4/xfs" some -A -s $d -t fs_t -c filesystem -p mount,unmount,relabelfrom
check "mounts on kubelet directories" some -A -s $d -t container_var_lib_t -c dir -p mounton,create,rmdir
check "context= mounts with the pod label" some -A -s $d -t container_file_t -c filesystem -p relabelto,mount
check "bind-mounts onto pod targets" some -A -s $d -t container_file_t -c dir -p mounton
check "runs mkfs in its own domain" some -A -s $d -t fsadm_exec_t -c file -p execute
check "reads the host NQN" some -A -s $d -t etc_t -c file -p read
check "device-mapper control for LUKS mappings" some -A -s $d -t lvm_control_t -c chr_file -p read,write
# What it must not do.
check "no shadow_t read" none -A -s $d -t shadow_t -c file -p read
check "no home directory read" none -A -s $d -t user_home_t -c file -p read
check "no ptrace" none -A -s $d -c process -p ptrace
check "no module load" none -A -s $d -c system -p module_load,module_request
check "no kernel keyring (LUKS volume keys stay in the dm table)" none -A -s $d -c key
check "no device node creation" none -A -s $d -c blk_file,chr_file -p create
# Only sockets of its own count: the base policy lets every daemon use sockets inherited
# from init (init_t), which is not the helper creating AF_ALG sockets.
check "no AF_ALG sockets of its own" none -A -s $d -t $d -c alg_socket
check "no kernel module files" none -A -s $d -t modules_object_t -c file -p read
check "no sys_module, sys_ptrace, net_admin, sys_rawio, setuid" none -A -s $d -c capability \
  -p sys_module,sys_ptrace,net_admin,net_raw,sys_rawio,setuid,setgid,mknod,sys_boot,sys_time
check "no TCP/UDP/raw sockets of its own" none -A -s $d -t $d -c tcp_socket,udp_socket,rawip_socket,packet_socket
check "no name_connect" none -A -s $d -p name_connect
check "no name_bind" none -A -s $d -p name_bind
check "no writes to /etc" none -A -s $d -t etc_t -c file -p write,create,unlink
check "no domain transition to fsadm_t" none -T -s $d -t fsadm_exec_t -c process
# Generic /var/lib access exists only behind the tunable, and the tunable is off.
varlib=$(sesearch -A -s $d -t var_lib_t -c dir -p mounton "$policy" | grep -v "\[ lbcsi_helper_generic_var_lib \]:True" || true)
if [[ -z $varlib ]]; then echo "ok   generic /var/lib mounton only behind the tunable"; else echo "FAIL unconditional var_lib_t mounton: $varlib"; fail=1; fi
if seinfo -x -b lbcsi_helper_generic_var_lib "$policy" | grep -q "lbcsi_helper_generic_var_lib false"; then
  echo "ok   tunable lbcsi_helper_generic_var_lib defaults to false"
else
  echo "FAIL tunable lbcsi_helper_generic_var_lib is not false by default"; fail=1
fi
check "no kernel tunables writes" none -A -s $d -t sysctl_kernel_t -c file -p write

# The exact capability set, so a widened set fails here.
caps=$(sesearch -A -s $d -t $d -c capability "$policy" | sed -n 's/.*capability {\(.*\)};/\1/p' | xargs -n1 | sort | xargs)
want="chown fowner sys_admin sys_resource"
if [[ $caps == "$want" ]]; then echo "ok   capabilities: $caps"; else echo "FAIL capabilities: got '$caps' want '$want'"; fail=1; fi

exit $fail
