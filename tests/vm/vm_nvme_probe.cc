// vm_nvme_probe: a small libnvme client for the VM tests. It connects and disconnects
// NVMe/TCP controllers the way the helper does (libnvme, no nvme-cli) and finds a
// namespace's block device by its UUID in sysfs, so shell tests can drive the kernel.
//
//   vm_nvme_probe connect --nqn N --traddr A --trsvcid P --hostnqn H [--hostid I]
//                         [--ctrl-loss-tmo S]          prints the controller name (nvme0)
//   vm_nvme_probe disconnect --ctrl nvmeX              waits until it is gone
//   vm_nvme_probe find --uuid U [--paths K] [--timeout-ms T]
//       waits until the namespace exists with at least K paths (default 1) and its /dev
//       node is there; prints "dev=/dev/nvmeSnN paths=P live=L"
//   vm_nvme_probe absent --uuid U [--wait-ms T]        exit 0 if no namespace has UUID U
//                                                      during T ms (default 500)
//   vm_nvme_probe gone --uuid U [--timeout-ms T]       wait until no namespace has UUID U
// Exit status: 0 success, 1 failure (the reason on stderr), 2 usage.

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <libnvme.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using Args = std::map<std::string, std::string>;

// "--key value" pairs after the subcommand.
std::optional<Args> ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 2; i < argc; i += 2) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) return std::nullopt;
    args[key.substr(2)] = argv[i + 1];
  }
  return args;
}

std::string Get(const Args& args, const std::string& key, const std::string& fallback = "") {
  auto it = args.find(key);
  return it == args.end() ? fallback : it->second;
}

std::string ReadAttr(const fs::path& path) {
  std::ifstream in(path);
  std::string value;
  std::getline(in, value);
  return value;
}

// Parses "nvme<a>n<b>" (head or plain disk) or "nvme<a>c<c>n<b>" (multipath path disk).
struct DiskName {
  int subsys = -1, ctrl = -1, ns = -1;
};
std::optional<DiskName> ParseDiskName(const std::string& name) {
  DiskName d;
  int used = 0;
  if (std::sscanf(name.c_str(), "nvme%dc%dn%d%n", &d.subsys, &d.ctrl, &d.ns, &used) == 3 &&
      used == static_cast<int>(name.size())) {
    return d;
  }
  d = DiskName{};
  if (std::sscanf(name.c_str(), "nvme%dn%d%n", &d.subsys, &d.ns, &used) == 2 &&
      used == static_cast<int>(name.size())) {
    return d;
  }
  return std::nullopt;
}

bool IsCtrlName(const std::string& name) {
  int n = 0, used = 0;
  return std::sscanf(name.c_str(), "nvme%d%n", &n, &used) == 1 &&
         used == static_cast<int>(name.size());
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int Connect(const Args& args) {
  const std::string nqn = Get(args, "nqn"), traddr = Get(args, "traddr"),
                    trsvcid = Get(args, "trsvcid", "4420"), hostnqn = Get(args, "hostnqn"),
                    hostid = Get(args, "hostid");
  if (nqn.empty() || traddr.empty() || hostnqn.empty()) {
    std::fprintf(stderr, "connect needs --nqn, --traddr and --hostnqn\n");
    return 2;
  }
  nvme_root_t root = nvme_create_root(stderr, LOG_WARNING);
  if (root == nullptr || nvme_scan_topology(root, nullptr, nullptr) < 0) {
    std::fprintf(stderr, "libnvme: cannot scan the topology: %s\n", std::strerror(errno));
    if (root != nullptr) nvme_free_tree(root);
    return 1;
  }
  int rc = 1;
  // libnvme 1.3 returns no host for a null NQN, hence the explicit one.
  nvme_host_t host =
      nvme_lookup_host(root, hostnqn.c_str(), hostid.empty() ? nullptr : hostid.c_str());
  nvme_ctrl_t ctrl = host == nullptr ? nullptr
                                     : nvme_create_ctrl(root, nqn.c_str(), "tcp", traddr.c_str(),
                                                        nullptr, nullptr, trsvcid.c_str());
  if (ctrl == nullptr) {
    std::fprintf(stderr, "libnvme: cannot create the controller object\n");
  } else {
    nvme_fabrics_config config;
    nvmf_default_config(&config);
    // Tests remove ports on purpose: do not retry for the default 10 minutes.
    config.ctrl_loss_tmo = std::stoi(Get(args, "ctrl-loss-tmo", "5"));
    config.reconnect_delay = 1;
    if (nvmf_add_ctrl(host, ctrl, &config) < 0) {
      int err = errno;
      // Codes from 1000 up are libnvme's (1006: the kernel refused the connect; its
      // reason is only in dmesg).
      std::fprintf(stderr, "nvmf_add_ctrl %s at %s:%s: %s (errno %d)\n", nqn.c_str(),
                   traddr.c_str(), trsvcid.c_str(),
                   err >= 1000 ? nvme_errno_to_string(err) : std::strerror(err), err);
      nvme_free_ctrl(ctrl);
    } else {
      std::printf("%s\n", nvme_ctrl_get_name(ctrl));
      rc = 0;
    }
  }
  nvme_free_tree(root);
  return rc;
}

int Disconnect(const Args& args) {
  const std::string name = Get(args, "ctrl");
  if (!IsCtrlName(name)) {
    std::fprintf(stderr, "disconnect needs --ctrl nvmeN\n");
    return 2;
  }
  nvme_root_t root = nvme_create_root(stderr, LOG_WARNING);
  if (root == nullptr) return 1;
  int rc = 1;
  nvme_ctrl_t ctrl = nvme_scan_ctrl(root, name.c_str());
  if (ctrl == nullptr) {
    std::fprintf(stderr, "no controller %s\n", name.c_str());
  } else if (nvme_disconnect_ctrl(ctrl) < 0) {
    std::fprintf(stderr, "nvme_disconnect_ctrl %s: %s\n", name.c_str(), std::strerror(errno));
  } else {
    rc = 0;
  }
  nvme_free_tree(root);
  if (rc != 0) return rc;
  const fs::path dir = fs::path("/sys/class/nvme") / name;
  for (auto end = Clock::now() + std::chrono::seconds(10); Clock::now() < end;) {
    if (!fs::exists(dir)) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "%s still present 10 s after the disconnect\n", name.c_str());
  return 1;
}

struct Found {
  std::string dev;
  int paths = 0;
  int live = 0;
};

// The namespace whose uuid attribute is `uuid`. With nvme_core.multipath=Y the disk
// nvme<S>n<N> is the multipath head and each path is a hidden nvme<S>c<C>n<N>; without
// multipath there is only nvme<C>n<N>, which counts as one path.
std::optional<Found> FindByUuid(const std::string& uuid) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/block", ec)) {
    const std::string name = entry.path().filename().string();
    auto head = ParseDiskName(name);
    if (!head || head->ctrl >= 0) continue;
    if (Lower(ReadAttr(entry.path() / "uuid")) != uuid) continue;
    Found found{"/dev/" + name};
    for (const auto& other : fs::directory_iterator("/sys/block", ec)) {
      auto path = ParseDiskName(other.path().filename().string());
      if (!path || path->ctrl < 0 || path->subsys != head->subsys || path->ns != head->ns) continue;
      ++found.paths;
      // The path disk's parent is its controller.
      const fs::path ctrl = fs::canonical(other.path() / "device", ec);
      if (!ec && ReadAttr(ctrl / "state") == "live") ++found.live;
    }
    if (found.paths == 0) {
      found.paths = 1;
      found.live = ReadAttr(entry.path() / "device" / "state") == "live" ? 1 : 0;
    }
    return found;
  }
  return std::nullopt;
}

int Find(const Args& args) {
  const std::string uuid = Lower(Get(args, "uuid"));
  const int want_paths = std::stoi(Get(args, "paths", "1"));
  const auto timeout = std::chrono::milliseconds(std::stoi(Get(args, "timeout-ms", "20000")));
  if (uuid.empty()) {
    std::fprintf(stderr, "find needs --uuid\n");
    return 2;
  }
  std::optional<Found> last;
  // Namespace scanning after a connect is asynchronous, and devtmpfs adds the node later.
  for (auto end = Clock::now() + timeout;;) {
    last = FindByUuid(uuid);
    struct stat st {};
    if (last && last->paths >= want_paths && stat(last->dev.c_str(), &st) == 0 &&
        S_ISBLK(st.st_mode)) {
      std::printf("dev=%s paths=%d live=%d\n", last->dev.c_str(), last->paths, last->live);
      return 0;
    }
    if (Clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (last) {
    std::fprintf(stderr, "namespace %s is %s with %d path(s), wanted %d\n", uuid.c_str(),
                 last->dev.c_str(), last->paths, want_paths);
  } else {
    std::fprintf(stderr, "no namespace with uuid %s after %lld ms\n", uuid.c_str(),
                 static_cast<long long>(timeout.count()));
  }
  return 1;
}

int Absent(const Args& args) {
  const std::string uuid = Lower(Get(args, "uuid"));
  const auto wait = std::chrono::milliseconds(std::stoi(Get(args, "wait-ms", "500")));
  for (auto end = Clock::now() + wait;;) {
    if (auto found = FindByUuid(uuid)) {
      std::fprintf(stderr, "namespace %s is visible as %s\n", uuid.c_str(), found->dev.c_str());
      return 1;
    }
    if (Clock::now() >= end) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int Gone(const Args& args) {
  const std::string uuid = Lower(Get(args, "uuid"));
  const auto timeout = std::chrono::milliseconds(std::stoi(Get(args, "timeout-ms", "10000")));
  for (auto end = Clock::now() + timeout;;) {
    auto found = FindByUuid(uuid);
    if (!found) return 0;
    if (Clock::now() >= end) {
      std::fprintf(stderr, "namespace %s is still %s\n", uuid.c_str(), found->dev.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: vm_nvme_probe connect|disconnect|find|absent|gone --key value...\n");
    return 2;
  }
  auto args = ParseArgs(argc, argv);
  if (!args) {
    std::fprintf(stderr, "arguments must be --key value pairs\n");
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "connect") return Connect(*args);
    if (cmd == "disconnect") return Disconnect(*args);
    if (cmd == "find") return Find(*args);
    if (cmd == "absent") return Absent(*args);
    if (cmd == "gone") return Gone(*args);
  } catch (const std::exception& e) {  // std::stoi on a bad number
    std::fprintf(stderr, "%s: %s\n", cmd.c_str(), e.what());
    return 2;
  }
  std::fprintf(stderr, "unknown subcommand %s\n", cmd.c_str());
  return 2;
}
