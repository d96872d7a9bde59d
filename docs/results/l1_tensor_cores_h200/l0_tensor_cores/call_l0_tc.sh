#!/usr/bin/env bash
# Device call: tc4 (285b110's choice: l1 and up on the tensor cores) against tc3 (l0 too), both wall2;
# messages compared; ncu of both on l0 x 5 and W2.
set -u
mkdir -p .carry/lift
for f in .carry/ab/*.gz; do n=$(basename ${f%.gz}); gunzip -c $f > .carry/lift/$n; chmod +x .carry/lift/$n; done
BINS="tc4 tc3" NCU_BINS="tc4 tc3" NCU_W="W2_only_l0x5 W2_upstream/" NCU_K="flash_kl" bash .carry/call_tc.sh > $OUT/bench.txt 2>&1
grep -vE "WARNING|Warning" $OUT/bench.txt | tail -70
