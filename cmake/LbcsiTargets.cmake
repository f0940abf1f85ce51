# Helpers that give every target of ours the same warnings and sanitizer flags.
# Generated code gets neither (see proto/CMakeLists.txt).

set(LBCSI_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)
set(LBCSI_SANITIZER_FLAGS "")
if(LBCSI_FUZZ)
  # Coverage instrumentation for our libraries; fuzzer binaries add the libFuzzer main.
  set(LBCSI_SANITIZER_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
elseif(LBCSI_SANITIZE)
  set(LBCSI_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
                            -fno-sanitize-recover=undefined)
endif()

function(lbcsi_target_defaults target)
  target_compile_options(${target} PRIVATE ${LBCSI_WARNINGS} ${LBCSI_SANITIZER_FLAGS})
  if(LBCSI_FUZZ)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  elseif(LBCSI_SANITIZE)
    target_link_options(${target} PRIVATE ${LBCSI_SANITIZER_FLAGS})
  endif()
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  lbcsi_use_pch(${target})
endfunction()

# lbcsi_library(name SOURCES ... DEPS ...)
function(lbcsi_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  lbcsi_target_defaults(${name})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# lbcsi_executable(name SOURCES ... DEPS ...)
function(lbcsi_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  lbcsi_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
endfunction()

# lbcsi_test(name SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s])
# A GoogleTest binary registered with ctest; LABELS select suites (unit, root, integration, ...).
function(lbcsi_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  lbcsi_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                       ENVIRONMENT "LBCSI_BUILD_DIR=${PROJECT_BINARY_DIR};LBCSI_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
