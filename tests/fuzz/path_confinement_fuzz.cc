// Fuzzes helper path confinement (helper/paths/path_guard.h) against a real
// temporary tree that holds escape routes: a symlink to "/", a symlink up and
// out of the root, and a bind-free sibling directory next to the root.
// Invariants for every accepted path: it is lexically clean and strictly below
// the root, IsUnderRoot agrees, the leaf is one component, and the parent
// directory that was really opened lies inside the root on disk.
#include <limits.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "helper/paths/path_guard.h"

namespace {

namespace fs = std::filesystem;

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Tree {
  std::string base;
  std::string root;  // canonical
  lbcsi::helper::PathGuard guard;
};

Tree* MakeTree() {
  char tmpl[] = "/tmp/lbcsi-fuzz-paths-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::abort();
  std::string base = fs::canonical(tmpl).string();
  std::string root = base + "/root";
  fs::create_directories(root + "/pods/p/volumes/v/mount");
  fs::create_directories(root + "/plugins/x/globalmount");
  fs::create_directories(base + "/rootsibling/secret");
  std::ofstream(root + "/pods/p/file") << "x";
  fs::create_directory_symlink("/", root + "/pods/slash");
  fs::create_directory_symlink("../../rootsibling", root + "/pods/up");
  fs::create_symlink("/etc/passwd", root + "/plugins/x/passwd");
  auto guard = lbcsi::helper::PathGuard::Create({root});
  if (!guard.ok()) std::abort();
  static std::string cleanup_dir;
  cleanup_dir = base;
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(cleanup_dir, ec);
  });
  return new Tree{base, root, std::move(*guard)};
}

bool LexicallyClean(std::string_view p) {
  if (p.empty() || p[0] != '/' || p.back() == '/') return false;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (part.find('\0') != std::string_view::npos) return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Tree* tree = MakeTree();
  std::string input(reinterpret_cast<const char*>(data), size);
  // Most inputs are made relative to the root so the interesting walks happen;
  // a leading '!' keeps the input as an absolute path of its own.
  std::string path;
  if (!input.empty() && input[0] == '!') {
    path = input.substr(1);
  } else {
    path = tree->root + "/" + input;
  }
  const bool under = tree->guard.IsUnderRoot(path);
  if (under) Check(path.rfind(tree->root + "/", 0) == 0);

  auto parent = tree->guard.OpenParent("target_path", path);
  if (!parent.ok()) return 0;
  Check(under);
  Check(LexicallyClean(path));
  Check(path.size() > tree->root.size() + 1 && path.rfind(tree->root + "/", 0) == 0);
  Check(!parent->leaf.empty() && parent->leaf.find('/') == std::string::npos);
  Check(parent->leaf != "." && parent->leaf != "..");
  Check(path.size() >= parent->leaf.size() &&
        path.compare(path.size() - parent->leaf.size(), std::string::npos, parent->leaf) == 0);
  // Where the parent fd really is: inside the root, never through a symlink out.
  char buf[PATH_MAX + 1];
  std::string link = "/proc/self/fd/" + std::to_string(parent->fd.get());
  ssize_t n = ::readlink(link.c_str(), buf, PATH_MAX);
  Check(n > 0);
  std::string real(buf, static_cast<size_t>(n));
  Check(real == tree->root || real.rfind(tree->root + "/", 0) == 0);

  auto leaf = lbcsi::helper::PathGuard::OpenLeaf(*parent);
  if (leaf.ok()) {
    n = ::readlink(("/proc/self/fd/" + std::to_string(leaf->get())).c_str(), buf, PATH_MAX);
    Check(n > 0);
    std::string leaf_real(buf, static_cast<size_t>(n));
    Check(leaf_real.rfind(tree->root + "/", 0) == 0);  // an O_NOFOLLOW leaf stays inside
  }
  return 0;
}
