# cmake -DDIR=... -P check_prediction.cmake: the analysis of the default run (gauge_attn_study with
# no arguments, --out DIR) is consistent. On the default synthetic beliefs the predictor is within
# a few percent of the measured values of sequence 0 (docs/study.md, "What a real run says": KL
# mean 2.3%, KL std 6.9%, row_std 7.8% at most), so: |KL mean error| < 5%, |KL std error| < 12%,
# |row_std error| < 12%. The KL per K shows both readings of the law of large numbers: std/mean
# falls and std grows with K, measured and predicted. The sharp thresholds: none at κ = 10, one at
# κ = 0.0001; and the verdict opens with the law of large numbers and ends with its conclusion.
file(READ "${DIR}/study.json" json)

# within(VALUE BOUND WHAT): |VALUE| < BOUND (CMake compares real numbers).
function(within value bound what)
  if(NOT (value LESS bound AND value GREATER -${bound}))
    message(FATAL_ERROR "${what} = ${value}, not within +-${bound}")
  endif()
endfunction()

# rows(VAR PATH...): the indices of the JSON array at PATH.
function(rows var)
  string(JSON n LENGTH "${json}" ${ARGN})
  math(EXPR last "${n} - 1")
  set(${var} RANGE ${last} PARENT_SCOPE)
endfunction()

# errors_within(TABLE BOUND KEY...): |KEY| < BOUND in every row of the prediction table TABLE.
function(errors_within table bound)
  rows(indices prediction ${table})
  foreach(i ${indices})
    string(JSON spec GET "${json}" prediction ${table} ${i} spec)
    string(JSON l GET "${json}" prediction ${table} ${i} l)
    foreach(key ${ARGN})
      string(JSON value GET "${json}" prediction ${table} ${i} ${key})
      within(${value} ${bound} "${table} row ${i} (${spec} l${l}) ${key}")
    endforeach()
  endforeach()
endfunction()
errors_within(kl 0.05 kl_mean_error)
errors_within(kl 0.12 kl_std_error)
errors_within(row_std 0.12 row_std_error)

rows(dims prediction kl_by_dim)
set(previous)
foreach(i ${dims})
  foreach(key kl_std kl_relative_std kl_std_predicted kl_relative_std_predicted)
    string(JSON ${key} GET "${json}" prediction kl_by_dim ${i} ${key})
  endforeach()
  if(previous)
    list(GET previous 0 std0)
    list(GET previous 1 relative0)
    list(GET previous 2 std_predicted0)
    list(GET previous 3 relative_predicted0)
    if(NOT (kl_std GREATER std0 AND kl_relative_std LESS relative0 AND kl_std_predicted GREATER std_predicted0 AND
            kl_relative_std_predicted LESS relative_predicted0))
      message(FATAL_ERROR "KL per K, row ${i}: the std does not grow or std/mean does not fall with K")
    endif()
  endif()
  set(previous ${kl_std} ${kl_relative_std} ${kl_std_predicted} ${kl_relative_std_predicted})
endforeach()

string(JSON n LENGTH "${json}" prediction min_sharp_dim)
math(EXPR last "${n} - 1")
string(JSON first_kappa GET "${json}" prediction min_sharp_dim 0 kappa)
string(JSON first_dim GET "${json}" prediction min_sharp_dim 0 min_sharp_K)
string(JSON last_kappa GET "${json}" prediction min_sharp_dim ${last} kappa)
string(JSON last_dim GET "${json}" prediction min_sharp_dim ${last} min_sharp_K)
if(NOT (first_kappa EQUAL 10 AND first_dim STREQUAL "never" AND last_kappa EQUAL 0.0001 AND last_dim EQUAL 1))
  message(FATAL_ERROR "min_sharp_dim: ${first_dim} at kappa ${first_kappa}, ${last_dim} at kappa ${last_kappa}")
endif()

string(JSON n LENGTH "${json}" verdict)
math(EXPR last "${n} - 1")
string(JSON first GET "${json}" verdict 0)
string(JSON conclusion GET "${json}" verdict ${last})
if(NOT first MATCHES "^Law of large numbers: from K = 1 to K = 19 " OR NOT conclusion MATCHES "^So: ")
  message(FATAL_ERROR "verdict: '${first}' ... '${conclusion}'")
endif()
message("prediction consistent: ${n} verdict lines")
