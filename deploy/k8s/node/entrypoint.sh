#!/bin/bash
# PID 1 of a test-cluster node container (scripts/k8s): makes the container look enough like
# a host for systemd, containerd and kubelet, then becomes systemd.
set -euo pipefail

# Mounts made under kubelet's directory by the helper pod must reach kubelet and the agent:
# pods' Bidirectional/HostToContainer propagation needs shared mounts.
mount --make-rshared /

# Docker gives a non-privileged container read-only /sys and cgroup mounts of its own
# cgroup only (cgroup v1 here). kubelet and containerd create pod cgroups: make them
# writable, and make the paths /proc/self/cgroup names resolve inside the container too.
mount -o remount,rw /sys
for dir in /sys/fs/cgroup/*/; do
  dir=${dir%/}
  mountpoint -q "$dir" || continue
  mount -o remount,bind,rw "$dir"
  sub=${dir##*/}
  self=$(awk -F: -v s="$sub" '{n=split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == s || "name=" a[i] == s || a[i] == "name=" s) print $3}' /proc/self/cgroup | head -1)
  if [[ -n $self && $self != / && ! -d $dir$self ]]; then
    mkdir -p "$dir$self"
    mount --bind "$dir" "$dir$self"
  fi
done

# /dev is the host's devtmpfs (docker run -v /dev:/dev), so loop devices that the helper
# attaches appear here and in its pod; nothing else of systemd should touch it.
exec /sbin/init
