#!/bin/sh
# The standard figures of an Apogee build, each scenario against a fresh embedded broker:
# produce with 128 B and 1 KiB bodies, 16 and 64 producers, ASYNC_FLUSH and SYNC_FLUSH; consume
# throughput of a backlog; end-to-end latency at half the 1 KiB maximum, read two ways: half the
# produce-only maximum (64 producers) and half the unpaced end-to-end rate. Prints the median of
# RUNS runs of each (python3 for the table).
#
#   bench/matrix.sh                 # RUNS=3 DURATION=30s WARMUP=5s
#   RUNS=1 DURATION=10s bench/matrix.sh
#
# Environment: APOGEE_BENCH (default target/release/apogee-bench), OUT_DIR (default a temp
# folder), EXTRA (more apogee-bench options for every run, e.g. "--threads 1"), BACKLOG (messages
# the consume scenario reads, default 1000000), SERIALIZE (header encoding, default rocketmq:
# the reference figures of Java RocketMQ were taken with its benchmark Producer on ROCKETMQ
# headers; SERIALIZE=json measures what Java clients send by default).
set -eu
here=$(dirname "$0")
bench=${APOGEE_BENCH:-$here/../target/release/apogee-bench}
runs=${RUNS:-3}
duration=${DURATION:-30s}
warmup=${WARMUP:-5s}
out=${OUT_DIR:-$(mktemp -d)}
extra=${EXTRA:-}
serialize=${SERIALIZE:-rocketmq}
mkdir -p "$out"

run() { # name, warm-up, options...
    name=$1
    warm=$2
    shift 2
    i=1
    while [ "$i" -le "$runs" ]; do
        echo "== $name run $i" >&2
        # shellcheck disable=SC2086
        "$bench" "$@" --embedded --warmup "$warm" --serialize "$serialize" -q $extra --json "$out/$name.$i.json" >/dev/null
        i=$((i + 1))
    done
}

for flush in async sync; do
    for size in 128 1024; do
        for producers in 16 64; do
            run "produce-$flush-$size-$producers" "$warmup" produce --flush "$flush" --size "$size" \
                --producers "$producers" --duration "$duration"
        done
    done
done
# No warm-up: it would read part of the backlog.
run consume-1024-backlog 0s consume --backlog "${BACKLOG:-1000000}" --duration 300s
run e2e-1024-unpaced "$warmup" e2e --size 1024 --producers 64 --duration "$duration"
half() { # scenario, section: half the median msg/s of its runs
    python3 -c "import glob, json, statistics, sys
rates = [json.load(open(p))[sys.argv[3]]['msgs_per_s'] for p in glob.glob(sys.argv[1] + '/' + sys.argv[2] + '.*.json')]
print(int(statistics.median(rates) / 2))" "$out" "$1" "$2"
}
# Half of which maximum: the produce-only one, and the rate a producing and consuming broker
# sustains (the lower of the two). Both are reported.
run e2e-1024-half-rate "$warmup" e2e --size 1024 --producers 64 --rate "$(half produce-async-1024-64 produce)" \
    --duration "$duration"
run e2e-1024-half-e2e-rate "$warmup" e2e --size 1024 --producers 64 --rate "$(half e2e-1024-unpaced produce)" \
    --duration "$duration"

python3 - "$out" "$serialize" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
def steal(reports):
    # The hypervisor's share of the machine in each run: where it is high, so are the tails.
    shares = [r["host"]["steal_pct"] for r in reports if "host" in r]
    return f"{statistics.median(shares):.1f}/{max(shares):.1f}" if shares else "-"
names = sorted({os.path.basename(p).rsplit(".", 2)[0] for p in glob.glob(os.path.join(out, "*.json"))})
print(f"{'scenario':28} {'msg/s':>9} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9':>7} {'max ms':>7} {'broker µs/msg':>13} {'bench µs/msg':>12} {'steal % med/max':>15}")
for name in names:
    reports = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, name + ".*.json")))]
    def med(f):
        vals = [f(r) for r in reports]
        return statistics.median(vals)
    section = "produce" if "produce" in reports[0] else "consume"
    lat = lambda r, k: r[section]["latency" if section == "produce" else "end_to_end"][k] / 1000
    print(f"{name:28} {med(lambda r: r[section]['msgs_per_s']):9.0f} {med(lambda r: r[section]['mb_per_s']):7.1f} "
          f"{med(lambda r: lat(r, 'p50_us')):7.2f} {med(lambda r: lat(r, 'p99_us')):7.2f} {med(lambda r: lat(r, 'p999_us')):7.2f} "
          f"{med(lambda r: lat(r, 'max_us')):7.1f} {med(lambda r: r['broker']['cpu_us_per_msg']):13.2f} {med(lambda r: r['bench']['cpu_us_per_msg']):12.2f} {steal(reports):>15}")
    if "consume" in reports[0] and section == "produce":
        e = lambda r, k: r["consume"]["end_to_end"][k] / 1000
        print(f"{'  consumed':28} {med(lambda r: r['consume']['msgs_per_s']):9.0f} {med(lambda r: r['consume']['mb_per_s']):7.1f} "
              f"{med(lambda r: e(r, 'p50_us')):7.2f} {med(lambda r: e(r, 'p99_us')):7.2f} {med(lambda r: e(r, 'p999_us')):7.2f} "
              f"{med(lambda r: e(r, 'max_us')):7.1f}   (end-to-end)")
print(f"reports in {out} ({sys.argv[2]} headers)")
PY
