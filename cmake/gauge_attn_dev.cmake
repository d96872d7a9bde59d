# Settings shared by the project's own targets (tests, examples, benchmarks), gathered in the
# INTERFACE target gauge_attn_dev: link it PRIVATE. It is never installed or exported, so
# nothing here reaches users of gauge_attn::gauge_attn.
add_library(gauge_attn_dev INTERFACE)
target_link_libraries(gauge_attn_dev INTERFACE gauge_attn::gauge_attn)

# nvcc: line tables in every build type, for compute-sanitizer and Nsight (no effect on the code).
target_compile_options(gauge_attn_dev INTERFACE "$<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>")

# Warnings. nvcc gets them sparingly: its own warnings, plus -Wall/-Wextra for the host compiler
# (-Wpedantic trips on the host code that nvcc generates).
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(gauge_attn_dev INTERFACE
    "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra;-Wpedantic>"
    "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>")
  if(NOT GAUGE_ATTN_LINKS_OPENMP)
    # The headers' #pragma omp are meant to be ignored without OpenMP.
    target_compile_options(gauge_attn_dev INTERFACE
      "$<$<COMPILE_LANGUAGE:CXX>:-Wno-unknown-pragmas>"
      "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wno-unknown-pragmas>")
  endif()
  if(GAUGE_ATTN_WERROR)
    target_compile_options(gauge_attn_dev INTERFACE
      "$<$<COMPILE_LANGUAGE:CXX>:-Werror>"
      "$<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings;-Xcompiler=-Werror>")
  endif()
elseif(MSVC)
  target_compile_options(gauge_attn_dev INTERFACE /W4 /permissive- $<$<BOOL:${GAUGE_ATTN_WERROR}>:/WX>)
endif()

# The upstream parity fixture (see shared/fixtures/upstream_parity_small/README.md), beside the
# repository by default. Code reads it through the macro GAUGE_ATTN_FIXTURE_DIR (a string literal).
get_filename_component(_gauge_attn_fixture_default
  "${PROJECT_SOURCE_DIR}/../shared/fixtures/upstream_parity_small" ABSOLUTE)
set(GAUGE_ATTN_FIXTURE_DIR "${_gauge_attn_fixture_default}" CACHE PATH
  "Directory of the upstream parity fixture (.npy files) used by tests and examples")
if(NOT IS_DIRECTORY "${GAUGE_ATTN_FIXTURE_DIR}")
  message(WARNING "gauge_attn: GAUGE_ATTN_FIXTURE_DIR='${GAUGE_ATTN_FIXTURE_DIR}' does not exist; "
                  "tests that read the upstream fixture will fail. Pass -DGAUGE_ATTN_FIXTURE_DIR=...")
endif()
target_compile_definitions(gauge_attn_dev INTERFACE "GAUGE_ATTN_FIXTURE_DIR=\"${GAUGE_ATTN_FIXTURE_DIR}\"")

# Header-only helpers that examples and tools may use (installed by scripts/setup.sh).
find_package(CLI11 CONFIG QUIET)
if(TARGET CLI11::CLI11)
  target_link_libraries(gauge_attn_dev INTERFACE CLI11::CLI11)
endif()
find_package(nlohmann_json 3 CONFIG QUIET)
if(TARGET nlohmann_json::nlohmann_json)
  target_link_libraries(gauge_attn_dev INTERFACE nlohmann_json::nlohmann_json)
endif()
# stb (libstb-dev) has no CMake package; both <stb/stb_image_write.h> and <stb_image_write.h> work.
find_path(GAUGE_ATTN_STB_INCLUDE_DIR stb_image_write.h PATH_SUFFIXES stb)
if(GAUGE_ATTN_STB_INCLUDE_DIR)
  target_include_directories(gauge_attn_dev SYSTEM INTERFACE "${GAUGE_ATTN_STB_INCLUDE_DIR}")
endif()
