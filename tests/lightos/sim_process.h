#pragma once
// Runs the lightos-sim binary for integration tests and the benchmark: spawned
// with --ready-file, waited for (bounded), stopped with SIGTERM then SIGKILL.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace lbcsi::lightos::testing {

class SimProcess {
 public:
  // `dir` receives ready.json and sim.log.
  SimProcess(std::string binary, std::string dir, std::vector<std::string> args)
      : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    std::filesystem::remove(dir_ + "/ready.json");
    args.push_back("--ready-file=" + dir_ + "/ready.json");
    std::string log = dir_ + "/sim.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      if (FILE* f = std::fopen(log.c_str(), "a")) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      std::vector<char*> argv{binary.data()};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~SimProcess() { Stop(); }
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  // Bounded wait for the ready file; false when the process died or took > 30 s.
  bool WaitReady() {
    for (int i = 0; i < 3000; ++i) {
      std::ifstream in(dir_ + "/ready.json");
      if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        auto doc = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
        if (!doc.is_discarded()) {
          ready_ = doc;
          return true;
        }
      }
      int status = 0;
      if (pid_ <= 0 || ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::vector<int> Ports() const {
    std::vector<int> ports;
    for (const auto& ep : ready_["endpoints"]) {
      std::string s = ep.get<std::string>();
      ports.push_back(std::stoi(s.substr(s.rfind(':') + 1)));
    }
    return ports;
  }
  std::string Control() const {
    return ready_.contains("control") ? ready_["control"].get<std::string>() : "";
  }
  std::string Log() const {
    std::ifstream in(dir_ + "/sim.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  nlohmann::json ready_;
};

// Runs the binary to completion (e.g. gen-certs); returns the exit code.
inline int RunToCompletion(std::string binary, std::vector<std::string> args) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv{binary.data()};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace lbcsi::lightos::testing
