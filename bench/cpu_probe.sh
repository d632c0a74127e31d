#!/usr/bin/env bash
# Quick A/B probe while tuning (not the benchmark of record: that is bench/run.sh).
#   bench/cpu_probe.sh PID URL [CONC] [SECONDS]: wrk POST load; prints req/s and CPU ms per request
set -euo pipefail
PID=$1 URL=$2 C=${3:-16} D=${4:-8}
KEY=${BENCH_KEY:-sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
before=$(ticks "$PID")
out=$(wrk -t1 -c"$C" -d"${D}s" --latency -s "$(dirname "$0")/../../shared/bench/wrk_post.lua" -H "Authorization: Bearer $KEY" "$URL")
after=$(ticks "$PID")
reqs=$(echo "$out" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
p50=$(echo "$out" | sed -n 's/.*"p50_us":\([0-9]*\).*/\1/p'); p99=$(echo "$out" | sed -n 's/.*"p99_us":\([0-9]*\).*/\1/p')
python3 -c "t=($after-$before)/$(getconf CLK_TCK); print(f'c=$C req/s={$reqs/$D:.0f} cpu_ms/req={1000*t/$reqs:.3f} p50_us=$p50 p99_us=$p99')"
