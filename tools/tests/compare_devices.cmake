# cmake -DSTUDY=gauge_attn_study -DCOMPARE=compare_study_tables -DDIR=... "-DARGS=arg;..." -P compare_devices.cmake
# Runs gauge_attn_study ARGS with --device cuda, then --device cpu (--out DIR/cuda, DIR/cpu) and
# compares their tables. Without a GPU it prints "skipped: no CUDA GPU found", which the test
# reports as skipped (SKIP_REGULAR_EXPRESSION).
foreach(device cuda cpu)
  execute_process(COMMAND ${STUDY} ${ARGS} --device ${device} --out ${DIR}/${device}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 AND err MATCHES "no CUDA GPU found[^\n]*")
    message("skipped: ${CMAKE_MATCH_0}")
    return()
  elseif(NOT rc EQUAL 0)
    message(FATAL_ERROR "--device ${device} exited with ${rc}:\n${out}${err}")
  endif()
  string(REGEX MATCH "gauge_attn_study: [^\n]*" header "${out}")
  message("${header}")
endforeach()
execute_process(COMMAND ${COMPARE} ${DIR}/cpu ${DIR}/cuda heads summary diversity kl_by_dim RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the tables of --device cpu and --device cuda differ")
endif()
