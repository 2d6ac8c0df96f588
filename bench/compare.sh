#!/bin/sh
# Runs one apogee-bench scenario against two clusters back to back and prints the ratio of
# every figure (OTHER / BASE).
#
#   bench/compare.sh BASE_NAMESRV OTHER_NAMESRV SCENARIO [apogee-bench options...]
#   bench/compare.sh 127.0.0.1:9876 127.0.0.1:9877 produce --size 1024 --producers 64 --warmup 5s
#
# Environment:
#   APOGEE_BENCH   the apogee-bench binary (default: target/release/apogee-bench, then PATH)
#   BASE_PID, OTHER_PID   broker process ids, to report each broker's CPU per message
#   OUT_DIR        where base.json and other.json are kept (default: a temporary folder)
set -eu

if [ "$#" -lt 3 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
base=$1
other=$2
shift 2

bench=${APOGEE_BENCH:-}
if [ -z "$bench" ]; then
    here=$(dirname "$0")
    if [ -x "$here/../target/release/apogee-bench" ]; then
        bench="$here/../target/release/apogee-bench"
    else
        bench=apogee-bench
    fi
fi
out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out"

echo "== base: $base" >&2
"$bench" "$@" -n "$base" ${BASE_PID:+--broker-pid "$BASE_PID"} --json "$out/base.json"
echo "== other: $other" >&2
"$bench" "$@" -n "$other" ${OTHER_PID:+--broker-pid "$OTHER_PID"} --json "$out/other.json"
echo "== ratio (reports in $out)" >&2
"$bench" compare "$out/base.json" "$out/other.json"
