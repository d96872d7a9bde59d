# Fails unless README contains EXAMPLE's text verbatim (the README's quick start is that file).
file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)
string(FIND "${readme}" "${example}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md does not show ${EXAMPLE} verbatim: copy the file into the quick start")
endif()
