# `format` rewrites our sources with clang-format; `format-check` fails on a difference;
# `lint` runs clang-tidy on our sources (slow: ~25 s per file that includes gRPC).
file(GLOB_RECURSE LBCSI_ALL_SOURCES CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/common/*.cc ${PROJECT_SOURCE_DIR}/common/*.h
     ${PROJECT_SOURCE_DIR}/volumeid/*.cc ${PROJECT_SOURCE_DIR}/volumeid/*.h
     ${PROJECT_SOURCE_DIR}/scparams/*.cc ${PROJECT_SOURCE_DIR}/scparams/*.h
     ${PROJECT_SOURCE_DIR}/lightos/*.cc ${PROJECT_SOURCE_DIR}/lightos/*.h
     ${PROJECT_SOURCE_DIR}/agent/*.cc ${PROJECT_SOURCE_DIR}/agent/*.h
     ${PROJECT_SOURCE_DIR}/helper/*.cc ${PROJECT_SOURCE_DIR}/helper/*.h
     ${PROJECT_SOURCE_DIR}/controller/*.cc ${PROJECT_SOURCE_DIR}/controller/*.h
     ${PROJECT_SOURCE_DIR}/tests/*.cc ${PROJECT_SOURCE_DIR}/tests/*.h)
find_program(CLANG_FORMAT NAMES clang-format-14 clang-format)
find_program(CLANG_TIDY NAMES clang-tidy-14 clang-tidy)
if(CLANG_FORMAT)
  add_custom_target(format COMMAND ${CLANG_FORMAT} -i ${LBCSI_ALL_SOURCES}
                    COMMENT "clang-format" VERBATIM)
  add_custom_target(format-check COMMAND ${CLANG_FORMAT} --dry-run --Werror ${LBCSI_ALL_SOURCES}
                    COMMENT "clang-format check" VERBATIM)
endif()
if(CLANG_TIDY)
  set(LBCSI_TIDY_SOURCES ${LBCSI_ALL_SOURCES})
  list(FILTER LBCSI_TIDY_SOURCES INCLUDE REGEX "\\.cc$")
  add_custom_target(lint COMMAND ${CLANG_TIDY} -p ${PROJECT_BINARY_DIR} --quiet ${LBCSI_TIDY_SOURCES}
                    COMMENT "clang-tidy (all sources)" VERBATIM)
endif()
