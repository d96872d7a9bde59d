# cmake -DBUILD_DIR=... -DTARGET=... -DCONFIG=... -DEXPECT=fails|compiles [-DMESSAGE_REGEX=...] -P check_build.cmake
# Builds one target of BUILD_DIR. EXPECT=fails: passes only if the build fails and a static_assert
# diagnostic (GCC/Clang "static assertion failed", MSVC "static_assert failed") on one line carries
# MESSAGE_REGEX. EXPECT=compiles: passes only if the build succeeds.
foreach(var BUILD_DIR TARGET EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_build.cmake: ${var} is not set")
  endif()
endforeach()

set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" ${config_args}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

if(EXPECT STREQUAL "compiles")
  if(NOT result EQUAL 0)
    message("${output}")
    message(FATAL_ERROR "FAIL: ${TARGET} must compile (it is the control of a failtest), but the build failed")
  endif()
  message(STATUS "PASS: ${TARGET} compiled")
elseif(EXPECT STREQUAL "fails")
  if(result EQUAL 0)
    message(FATAL_ERROR "FAIL: ${TARGET} compiled, but it must fail to compile")
  endif()
  if(NOT output MATCHES "static.assert[^\n]*${MESSAGE_REGEX}")
    message("${output}")
    message(FATAL_ERROR "FAIL: ${TARGET} failed to compile, but without the expected static_assert "
                        "message matching: ${MESSAGE_REGEX}")
  endif()
  message(STATUS "PASS: ${TARGET} failed to compile with the expected message")
else()
  message(FATAL_ERROR "check_build.cmake: EXPECT must be 'fails' or 'compiles', not '${EXPECT}'")
endif()
