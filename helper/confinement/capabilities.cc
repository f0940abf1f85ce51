#include "helper/confinement/capabilities.h"

#include <errno.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>

#include "common/logging.h"
#include "common/strings.h"

namespace lbcsi::helper {
namespace {

struct CapFree {
  void operator()(void* p) const { cap_free(p); }
};
using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

bool Contains(std::span<const cap_value_t> list, cap_value_t cap) {
  return std::find(list.begin(), list.end(), cap) != list.end();
}

std::string Errno(std::string_view what) {
  return Cat(what, ": ", strerror(errno));
}

std::string CapName(cap_value_t cap) {
  char* name = cap_to_name(cap);
  std::string out = name ? name : Cat(cap);
  cap_free(name);
  return out;
}

}  // namespace

std::vector<cap_value_t> HelperCapabilities() {
  return {CAP_SYS_ADMIN, CAP_CHOWN, CAP_FOWNER, CAP_SYS_RESOURCE};
}

int CountThreads() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    std::string_view v(line);
    if (ConsumePrefix(&v, "Threads:")) {
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      return std::atoi(std::string(v).c_str());
    }
  }
  return -1;
}

absl::Status DropCapabilities(std::span<const cap_value_t> keep) {
  const int threads = CountThreads();
  if (threads != 1) {
    return absl::FailedPreconditionError(
        Cat("DropCapabilities must run before any thread starts (capabilities are per "
            "thread); this process has ",
            threads, " threads"));
  }
  CapPtr current(cap_get_proc());
  if (!current) return absl::InternalError(Errno("cap_get_proc"));

  // Keep only what we were given; never ask for more.
  std::vector<cap_value_t> kept;
  for (cap_value_t cap : keep) {
    cap_flag_value_t permitted = CAP_CLEAR;
    if (cap_get_flag(current.get(), cap, CAP_PERMITTED, &permitted) == 0 && permitted == CAP_SET) {
      kept.push_back(cap);
    } else {
      LOG(kInfo, "capability not granted by the environment; continuing without it",
          {"capability", CapName(cap)});
    }
  }

  // Bounding set first: trimming it needs CAP_SETPCAP, which goes away below.
  cap_flag_value_t setpcap = CAP_CLEAR;
  cap_get_flag(current.get(), CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
  if (setpcap == CAP_SET) {
    for (cap_value_t cap = 0; cap < static_cast<cap_value_t>(cap_max_bits()); ++cap) {
      if (Contains(kept, cap)) continue;
      if (cap_get_bound(cap) == 1 && cap_drop_bound(cap) != 0) {
        return absl::InternalError(Errno(Cat("dropping ", CapName(cap), " from bounding set")));
      }
    }
  } else {
    LOG(kWarn,
        "no CAP_SETPCAP: bounding set left as the environment set it; no_new_privs "
        "still prevents regaining capabilities");
  }
  if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0) {
    return absl::InternalError(Errno("clearing the ambient set"));
  }

  CapPtr next(cap_init());  // all clear, inheritable included
  if (!next) return absl::InternalError(Errno("cap_init"));
  if (!kept.empty()) {
    for (cap_flag_t flag : {CAP_EFFECTIVE, CAP_PERMITTED}) {
      if (cap_set_flag(next.get(), flag, static_cast<int>(kept.size()), kept.data(), CAP_SET) !=
          0) {
        return absl::InternalError(Errno("cap_set_flag"));
      }
    }
  }
  if (cap_set_proc(next.get()) != 0) return absl::InternalError(Errno("cap_set_proc"));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::InternalError(Errno("prctl(PR_SET_NO_NEW_PRIVS)"));
  }
  return absl::OkStatus();
}

std::string EffectiveCapabilitiesText() {
  CapPtr current(cap_get_proc());
  if (!current) return "?";
  std::string out;
  for (cap_value_t cap = 0; cap < static_cast<cap_value_t>(cap_max_bits()); ++cap) {
    cap_flag_value_t v = CAP_CLEAR;
    if (cap_get_flag(current.get(), cap, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET) {
      if (!out.empty()) out += ',';
      out += CapName(cap);
    }
  }
  return out.empty() ? "none" : out;
}

}  // namespace lbcsi::helper
