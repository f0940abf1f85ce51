# Tests that run inside the qemu guest (tests/vm/run-in-vm.sh), where the kernel has
# NVMe/TCP, nvmet and configfs. They are not part of the host's ctest run: they form a
# separate ctest directory, ${PROJECT_BINARY_DIR}/vm-guest, that the host test `vm_suite`
# runs in ONE guest boot. Any CMakeLists.txt may include this file and call:
#
#   lbcsi_vm_guest_test(NAME name COMMAND cmd args... [LABELS l...] [TIMEOUT s])
#
# COMMAND may use generator expressions ($<TARGET_FILE:tgt>). The guest runs as root, in
# a throw-away root (writes outside the build dir vanish), with LBCSI_IN_VM=1,
# LBCSI_BUILD_DIR and LBCSI_SOURCE_DIR set.
include_guard(GLOBAL)

function(lbcsi_vm_guest_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "COMMAND;LABELS" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_COMMAND)
    message(FATAL_ERROR "lbcsi_vm_guest_test needs NAME and COMMAND")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS vm)
  endif()
  # One CTest line per test; bracket arguments keep every argument verbatim.
  set(line "add_test([==[${ARG_NAME}]==]")
  foreach(arg IN LISTS ARG_COMMAND)
    string(APPEND line " [==[${arg}]==]")
  endforeach()
  string(APPEND line ")\nset_tests_properties([==[${ARG_NAME}]==] PROPERTIES")
  string(APPEND line " LABELS [==[${ARG_LABELS}]==] TIMEOUT ${ARG_TIMEOUT}")
  string(APPEND line " ENVIRONMENT [==[LBCSI_BUILD_DIR=${PROJECT_BINARY_DIR};")
  string(APPEND line "LBCSI_SOURCE_DIR=${PROJECT_SOURCE_DIR}]==])\n")
  set_property(GLOBAL APPEND_STRING PROPERTY LBCSI_VM_GUEST_TESTFILE "${line}")
  set_property(GLOBAL APPEND PROPERTY LBCSI_VM_GUEST_TESTS ${ARG_NAME})
endfunction()

# Writes the guest suite's CTestTestfile.cmake once every directory has been read.
function(lbcsi_vm_guest_write_suite)
  get_property(body GLOBAL PROPERTY LBCSI_VM_GUEST_TESTFILE)
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/vm-guest/CTestTestfile.cmake
       CONTENT "# Generated: tests run inside the qemu guest (tests/vm).\n${body}")
endfunction()
