# One precompiled header of the heavy third-party headers (gRPC, protobuf, abseil) that
# nearly every translation unit of ours includes through generated *.grpc.pb.h files.
# Parsing them dominates a cold build on a 2-core CI machine. Our targets reuse the one
# PCH (they share flags); generated protobuf code, built with other flags, does not.
# GCC only: clang refuses a PCH whose macro set differs from a user's, and our targets' -D
# sets differ by the libraries they link (GCC only compares macros the header uses).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set(_lbcsi_pch_default ON)
else()
  set(_lbcsi_pch_default OFF)
endif()
option(LBCSI_PCH "Precompile gRPC/protobuf/abseil headers for our targets" ${_lbcsi_pch_default})

if(LBCSI_PCH)
  add_library(lbcsi_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/pch_anchor.cc)
  target_compile_options(lbcsi_pch PRIVATE ${LBCSI_WARNINGS} ${LBCSI_SANITIZER_FLAGS})
  target_link_libraries(lbcsi_pch PRIVATE gRPC::grpc++ protobuf::libprotobuf absl::status
                                          absl::statusor absl::time absl::strings)
  target_precompile_headers(lbcsi_pch PRIVATE
    <grpcpp/grpcpp.h>
    <google/protobuf/message.h>
    <google/protobuf/generated_message_reflection.h>
    <google/protobuf/util/json_util.h>
    <absl/status/statusor.h>
    <absl/time/time.h>
    <absl/strings/str_cat.h>
    <map>
    <memory>
    <string>
    <vector>)
  # ccache can cache PCH users only with these (it hashes the .gch itself).
  if(CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env
        "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        ${CCACHE_PROGRAM})
  endif()
endif()

# A user must compile with the macros the PCH was built with (gRPC's -pthread defines
# _REENTRANT; it is PIC, so executables compile as PIC too, not PIE); -Winvalid-pch, which
# CMake adds, turns a mismatch into a build error.
function(lbcsi_use_pch target)
  if(LBCSI_PCH)
    target_precompile_headers(${target} REUSE_FROM lbcsi_pch)
    target_compile_options(${target} PRIVATE -pthread -fPIC)
  endif()
endfunction()
