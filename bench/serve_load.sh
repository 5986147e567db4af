#!/usr/bin/env bash
# Load test of `recur serve` on loopback, with the server's CPU time per request.
#
#   bench/serve_load.sh --recur target/release/recur --model RUN/model \
#       [--port 8181] [--serve "--precision int8"] [--load "--rate 3000"] \
#       [--duration 12] [--requests 200000]
#
# Starts the server, warms it up (2 s at 1,500 requests/s), runs `recur loadtest` with 32
# connections, prints the load test's report, the client's CPU time, and the server's CPU
# time per request (from /proc/PID/stat before and after) and context switches. The server
# is stopped on exit, and the script exits with the load test's status (1 when any request
# failed). Used for the figures in BENCHMARKS.md (issue 5).
set -euo pipefail

recur=target/release/recur model="" port=8181 serve_args="" load_args="" duration=12 requests=200000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --recur) recur=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --serve) serve_args=$2; shift 2 ;;
        --load) load_args=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) echo "serve_load.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n "$model" ]] || { echo "serve_load.sh: --model DIR is required" >&2; exit 2; }
[[ -x "$recur" ]] || { echo "serve_load.sh: $recur is not an executable (build with cargo build --release -p recur)" >&2; exit 2; }

log=$(mktemp)
# shellcheck disable=SC2086
"$recur" serve --model "$model" --addr "127.0.0.1:$port" $serve_args >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log" "$log.time"' EXIT
for _ in $(seq 100); do
    grep -q listening "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
done
grep -q listening "$log" || { echo "serve_load.sh: the server did not start" >&2; cat "$log" >&2; exit 1; }
head -1 "$log"

url="http://127.0.0.1:$port"
"$recur" loadtest --url "$url" --connections 32 --requests 3000 --duration 2 --rate 1500 >/dev/null

cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
switches() { cat /proc/"$server"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
c0=$(cpu) s0=$(switches)
status=0
# shellcheck disable=SC2086
report=$(/usr/bin/time -f "client CPU: %U s user, %S s system" "$recur" loadtest --url "$url" --connections 32 \
    --requests "$requests" --duration "$duration" $load_args --json 2>"$log.time") || status=$?
c1=$(cpu) s1=$(switches)
echo "$report"
cat "$log.time"
ok=$(grep -o '"ok": *[0-9]*' <<<"$report" | grep -o '[0-9]*$' || echo 0)
tck=$(getconf CLK_TCK)
awk -v c="$((c1 - c0))" -v t="$tck" -v n="$ok" -v s="$((s1 - s0))" 'BEGIN {
    printf "server CPU: %.2f s, %.3f ms per successful request (%d); %d context switches\n", c / t, (n > 0 ? 1000 * c / t / n : 0), n, s }'
# The load test exits 1 when any request failed; so does this script.
exit "$status"
