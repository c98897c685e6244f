#!/usr/bin/env bash
# Where the gateway's CPU goes under the load of benches/gateway.rs.
#
#   bash benches/gateway/profile.sh [CLIENTS] [SECONDS]     (defaults: 16 clients, 15 s)
#
# Runs the bench's gateway row only (`MCPSOC_BENCH_GW_TARGETS=gateway`) at one concurrency,
# attaches `perf record --call-graph dwarf` to the gateway process (the real `mcpsoc gateway`
# child the bench starts) for a few seconds inside the measured window, and prints the share of
# the gateway's CPU per thread and per stage (inclusive, so stages may nest), with the bench's
# CPU ms per request turned into ms per request per stage. Needs perf (`apt-get install -y
# linux-perf`) and permission to trace the process (root, or kernel.perf_event_paranoid <= 1).
# Leaves perf.data and the bench output in a temporary directory it names.
set -uo pipefail
cd "$(dirname "$0")/../.."

CLIENTS="${1:-16}"
SECS="${2:-15}"
command -v perf >/dev/null 2>&1 || { echo "profile: perf is not installed (apt-get install -y linux-perf)" >&2; exit 1; }
[ "$SECS" -ge 8 ] 2>/dev/null || { echo "profile: SECONDS must be a number >= 8" >&2; exit 1; }

out="$(mktemp -d /tmp/mcpsoc-gateway-profile-XXXXXX)"
echo "profile: building and starting the bench (gateway row, $CLIENTS clients, $SECS s); output in $out"
MCPSOC_BENCH_GW_TARGETS=gateway MCPSOC_BENCH_GW_CLIENTS="$CLIENTS" MCPSOC_BENCH_GW_SECS="$SECS" \
  cargo bench --bench gateway >"$out/bench.txt" 2>&1 &
bench=$!

# The gateway child of this bench: the newest `mcpsoc ... gateway` whose config is in a bench
# scratch directory.
gw=""
for _ in $(seq 1 1200); do
  gw="$(pgrep -n -f 'mcpsoc --config /tmp/mcpsoc-gateway-bench-[^ ]*/mcpsoc.toml' || true)"
  [ -n "$gw" ] && break
  kill -0 "$bench" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$gw" ]; then
  wait "$bench"
  echo "profile: the gateway never started; bench output:" >&2
  tail -n 30 "$out/bench.txt" >&2
  exit 1
fi
# Sessions open, warm-up (1 s) passes: profile the middle of the window.
sleep 4
record=$(( SECS - 6 ))
[ "$record" -gt 8 ] && record=8
echo "profile: perf record on gateway pid $gw for $record s"
perf record -q -F 499 --call-graph dwarf,16384 -p "$gw" -o "$out/perf.data" -- sleep "$record" 2>"$out/perf-record.log"
wait "$bench"
status=$?
[ "$status" -eq 0 ] || { echo "profile: the bench failed ($status):" >&2; tail -n 30 "$out/bench.txt" >&2; exit 1; }

line="$(grep -E '^  gateway +[0-9]+ clients:' "$out/bench.txt" | tail -n 1)"
echo "$line"
cpu="$(sed -E 's/.*proxy CPU ([0-9.]+) ms\/req.*/\1/' <<<"$line")"

echo
echo "gateway CPU by thread (self time, % of the gateway's samples):"
perf report -i "$out/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null \
  | awk '/%/ && !/^#/ { name=$2; for (i=3;i<=NF;i++) name=name" "$i; sub(/-[0-9]+$/, "-*", name); pct[name]+=$1 }
         END { for (n in pct) printf "  %6.1f%%  %s\n", pct[n], n }' | sort -rn

perf report -i "$out/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' >"$out/children.txt"
stage() {
  # stage LABEL SYMBOL-REGEX: the largest inclusive share of a matching symbol.
  local pct
  pct="$(grep -E "$2" "$out/children.txt" | awk '{ sub(/%/, "", $1); if ($1 > m) m = $1 } END { printf "%.1f", m + 0 }')"
  awk -v p="$pct" -v c="$cpu" -v l="$1" 'BEGIN { printf "  %6.1f%%  %7.3f ms/req  %s\n", p, p * c / 100, l }'
}
echo
echo "gateway CPU by stage (inclusive % of samples; ms/req = share x the bench's $cpu ms/req):"
stage "event log: sled IO thread pool (segment writes, flushes)" '\] sled::threadpool::perform_work$'
stage "event log: Publisher::append_blocking (store append + flush per batch)" 'Publisher::append_blocking$'
stage "  of which sled apply_batch (event + indexes)" '\] sled::tree::Tree::apply_batch$'
stage "request path: proxy::handle (everything per request on the runtime)" 'mcpsoc::gateway::proxy::handle::'
stage "  of which token validation (jwt::validate, Ed25519)" 'mcpsoc::auth::jwt::validate$'
stage "  of which post (body, JSON-RPC, headers, session, pins, forward)" 'mcpsoc::gateway::proxy::post::'
stage "hyper server connection (parse, write; includes proxy::handle)" 'mcpsoc::gateway::serve::'
stage "hyper client connection to the upstream" 'client::conn::http1::upgrades::UpgradeableConnection'
echo
echo "profile: perf data in $out/perf.data (perf report -i $out/perf.data --children)"
