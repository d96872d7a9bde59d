# cmake -DCOMMAND="exe;arg;..." -DEXPECT=ok|fail -DREGEX=... [-DSTDERR_EMPTY=ON] -P expect.cmake
# Runs COMMAND; passes when its exit code is 0 (EXPECT=ok) or non-zero (EXPECT=fail), its
# stdout + stderr match REGEX (the clear message a failure must give) and, with STDERR_EMPTY, it
# wrote nothing to stderr.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(EXPECT STREQUAL "ok" AND NOT rc EQUAL 0)
  message(FATAL_ERROR "expected exit code 0, got ${rc}")
elseif(EXPECT STREQUAL "fail" AND (rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$"))
  message(FATAL_ERROR "expected a non-zero exit code, got '${rc}'")
endif()
if(DEFINED REGEX AND NOT "${out}${err}" MATCHES "${REGEX}")
  message(FATAL_ERROR "output does not match '${REGEX}'")
endif()
if(STDERR_EMPTY AND NOT err STREQUAL "")
  message(FATAL_ERROR "expected nothing on stderr")
endif()
