#pragma once
// Dropping the capabilities the helper does not need. Only ever drops: a
// capability in the keep-list that the environment did not grant (e.g.
// CAP_SYS_RESOURCE on a restricted host) is simply absent afterwards.

#include <sys/capability.h>

#include <span>
#include <string>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::helper {

// What the serving helper keeps, and why:
//   CAP_SYS_ADMIN    mount/umount, loop devices, /dev/nvme-fabrics, BLKROSET, BLKRRPART,
//                    NVMe rescan, xfs growfs
//   CAP_CHOWN        PrepareSocketDir hands directories to the agent's uid/gid
//   CAP_FOWNER       re-applying the mode of a directory already handed to the agent
//   CAP_SYS_RESOURCE ext4 online resize (EXT4_IOC_RESIZE_FS); kept only if present
// Not kept: CAP_DAC_OVERRIDE (everything the helper touches is root-owned: kubelet's
// directories, device nodes, its own state), CAP_MKNOD (loop nodes come from devtmpfs),
// CAP_NET_ADMIN (NVMe/TCP connect needs only CAP_SYS_ADMIN), CAP_SETPCAP (used once,
// to trim the bounding set, then dropped).
std::vector<cap_value_t> HelperCapabilities();

// Keeps `keep` ∩ (what the process has) in the effective and permitted sets,
// clears the inheritable and ambient sets, removes everything else from the
// bounding set (when CAP_SETPCAP allows; without it the bounding set stays and
// no_new_privs keeps exec from regaining anything) and sets no_new_privs.
//
// Capabilities are per thread: this must run while the process has exactly
// one thread (before gRPC starts); FAILED_PRECONDITION otherwise.
absl::Status DropCapabilities(std::span<const cap_value_t> keep);

// "cap_chown,cap_sys_admin" for the effective set of the calling thread (logs).
std::string EffectiveCapabilitiesText();

// Number of threads in this process (from /proc/self/status); -1 on error.
int CountThreads();

}  // namespace lbcsi::helper
