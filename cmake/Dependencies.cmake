# Every dependency is a Debian 12 package (scripts/install-deps installs them).
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)          # module mode: protobuf 3.21
find_package(gRPC CONFIG REQUIRED)       # gRPC 1.51
find_package(absl CONFIG REQUIRED)       # abseil 20220623
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBNVME REQUIRED IMPORTED_TARGET libnvme)
pkg_check_modules(LIBMOUNT REQUIRED IMPORTED_TARGET mount)
# libmount's own SELinux dependency (libmount-dev pulls libselinux1-dev): the helper asks it
# the question libmount asks before it drops context= (helper/paths/mounter.h).
pkg_check_modules(LIBSELINUX REQUIRED IMPORTED_TARGET libselinux)
pkg_check_modules(LIBBLKID REQUIRED IMPORTED_TARGET blkid)
pkg_check_modules(LIBSECCOMP REQUIRED IMPORTED_TARGET libseccomp)
pkg_check_modules(LIBCAP REQUIRED IMPORTED_TARGET libcap)
pkg_check_modules(LIBCRYPTSETUP REQUIRED IMPORTED_TARGET libcryptsetup)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(OpenSSL REQUIRED)
if(LBCSI_TESTS)
  find_package(GTest CONFIG REQUIRED)
  find_package(benchmark CONFIG REQUIRED)
endif()
find_program(PROTOC_PROGRAM protoc REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
