# `format` rewrites our sources with clang-format; `format-check` and the `format_check` test
# (label unit, so CI runs it) fail on any difference; `lint` runs clang-tidy on our sources
# (slow: ~25 s per file that includes gRPC).
#
# "Our sources" is every C/C++ file under every top-level folder of the repository except build
# trees, git metadata and generated code, so a new folder is checked without editing this file.
file(GLOB _lbcsi_top_level LIST_DIRECTORIES true RELATIVE ${PROJECT_SOURCE_DIR}
     ${PROJECT_SOURCE_DIR}/*)
set(LBCSI_ALL_SOURCES)
foreach(_entry IN LISTS _lbcsi_top_level)
  if(NOT IS_DIRECTORY ${PROJECT_SOURCE_DIR}/${_entry} OR _entry MATCHES "^(build.*|\\..*|gen)$")
    continue()
  endif()
  file(GLOB_RECURSE _lbcsi_found CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/${_entry}/*.cc ${PROJECT_SOURCE_DIR}/${_entry}/*.h
       ${PROJECT_SOURCE_DIR}/${_entry}/*.c)
  list(APPEND LBCSI_ALL_SOURCES ${_lbcsi_found})
endforeach()
list(FILTER LBCSI_ALL_SOURCES EXCLUDE REGEX "/gen/")
list(SORT LBCSI_ALL_SOURCES)

find_program(CLANG_FORMAT NAMES clang-format-14 clang-format)
find_program(CLANG_TIDY NAMES clang-tidy-14 clang-tidy)
if(CLANG_FORMAT)
  add_custom_target(format COMMAND ${CLANG_FORMAT} -i ${LBCSI_ALL_SOURCES}
                    COMMENT "clang-format" VERBATIM)
  add_custom_target(format-check COMMAND ${CLANG_FORMAT} --dry-run --Werror ${LBCSI_ALL_SOURCES}
                    COMMENT "clang-format check" VERBATIM)
endif()
if(LBCSI_TESTS)
  if(NOT CLANG_FORMAT)
    message(FATAL_ERROR "clang-format-14 is needed for the format_check test (scripts/install-deps)")
  endif()
  add_test(NAME format_check COMMAND ${CLANG_FORMAT} --dry-run --Werror ${LBCSI_ALL_SOURCES})
  set_tests_properties(format_check PROPERTIES LABELS unit TIMEOUT 300)
endif()
if(CLANG_TIDY)
  set(LBCSI_TIDY_SOURCES ${LBCSI_ALL_SOURCES})
  list(FILTER LBCSI_TIDY_SOURCES INCLUDE REGEX "\\.cc$")
  add_custom_target(lint COMMAND ${CLANG_TIDY} -p ${PROJECT_BINARY_DIR} --quiet ${LBCSI_TIDY_SOURCES}
                    COMMENT "clang-tidy (all sources)" VERBATIM)
endif()
