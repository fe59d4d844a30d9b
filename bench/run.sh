#!/usr/bin/env bash
# bench/run.sh -- sett vs real etcd (and vs a storage-less ceiling), measured
# with etcd's own benchmark tool, in one run on one machine. See
# bench/README.md.
#
# Usage: bench/run.sh            (normally through `make bench`)
# Settings come from the environment; see the defaults below.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- settings ------------------------------------------------------------
# Binaries. (Deliberately not named ETCD_*: etcd reads ETCD_* variables from
# its environment as flags.)
BENCH_ETCD=${BENCH_ETCD:-$ROOT/bin/etcd}
BENCH_SETT=${BENCH_SETT:-$ROOT/bin/sett}
BENCH_TOOL=${BENCH_TOOL:-$ROOT/bin/benchmark}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}
E2E_TIMINGS=${E2E_TIMINGS:-$ROOT/bin/e2e-timings.md} # written by the e2e workload; included if present

BENCH_LONG=${BENCH_LONG:-0}         # 1: also load to HUGE_KEYS keys
REPEAT=${REPEAT:-3}                 # runs of every figure per server
PUT1_TOTAL=${PUT1_TOTAL:-5000}      # puts with 1 client over 1 connection
PUT100_TOTAL=${PUT100_TOTAL:-50000} # puts with 100 clients over 10 connections
PUT1000_TOTAL=${PUT1000_TOTAL:-50000} # puts with 1000 clients over 100 connections
TXN_TOTAL=${TXN_TOTAL:-30000}       # txn-put requests
# txn-mixed requests: each read counts every key in the store (~60k), which
# makes this figure hundreds of times slower per request than the others.
TXN_MIXED_TOTAL=${TXN_MIXED_TOTAL:-3000}
LEASE_TOTAL=${LEASE_TOTAL:-50000}   # lease keep-alive requests
RANGE_TOTAL=${RANGE_TOTAL:-100000}  # ranges (each consistency) with 100 clients over 10 connections
WATCH_LAT_PUTS=${WATCH_LAT_PUTS:-1000} # puts of the watch-latency figure ...
WATCH_LAT_RATE=${WATCH_LAT_RATE:-200}  # ... at this many per second
WATCH_FANOUT_PUTS=${WATCH_FANOUT_PUTS:-200} # puts seen by each of the 1000 fan-out watchers
KEYS=${KEYS:-100000}                # keys of the load figure, every repeat
BIG_KEYS=${BIG_KEYS:-1000000}       # keys of the big load and start-up figures, BIG_REPEAT times (0: skip)
BIG_REPEAT=${BIG_REPEAT:-1}
STARTUP_REPEAT=${STARTUP_REPEAT:-3} # restarts timed after each big load
if [[ $BENCH_LONG == 1 ]]; then
	HUGE_KEYS=${HUGE_KEYS:-5000000}  # the big load continues to this many keys (0: skip)
else
	HUGE_KEYS=${HUGE_KEYS:-0}
fi
FSYNC_COUNT=${FSYNC_COUNT:-1000}    # 4 KiB synchronous writes of the fsync measurement
BENCH_CLUSTER=${BENCH_CLUSTER:-1}   # 1: also measure 3-member clusters (bench/cluster.sh); 0: skip
# Requests of the 3-member figures: smaller than the single-member ones in
# the default run (to keep it near 15 minutes), the same in long mode.
if [[ $BENCH_LONG == 1 ]]; then
	CLUSTER_PUT1_TOTAL=${CLUSTER_PUT1_TOTAL:-$PUT1_TOTAL}
	CLUSTER_PUT100_TOTAL=${CLUSTER_PUT100_TOTAL:-$PUT100_TOTAL}
	CLUSTER_RANGE_TOTAL=${CLUSTER_RANGE_TOTAL:-$RANGE_TOTAL}
else
	CLUSTER_PUT1_TOTAL=${CLUSTER_PUT1_TOTAL:-2000}
	CLUSTER_PUT100_TOTAL=${CLUSTER_PUT100_TOTAL:-20000}
	CLUSTER_RANGE_TOTAL=${CLUSTER_RANGE_TOTAL:-30000}
fi
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
SERVERS=${SERVERS:-etcd sett ceiling} # first one is the baseline of the ratio column
LOG_LEVEL=${LOG_LEVEL:-warn}      # --log-level of both servers
KEEP_WORK=${KEEP_WORK:-0}         # 1: keep the temporary data dirs and logs
# The big loads would hit etcd's default 2 GiB backend quota at a few
# million keys; both servers get this quota for them.
BIG_QUOTA=${BIG_QUOTA:-17179869184}

# Relative paths are relative to where the script was started.
OUT_DIR=$(realpath -m -- "$OUT_DIR")
E2E_TIMINGS=$(realpath -m -- "$E2E_TIMINGS")

# --- helpers ---------------------------------------------------------------
T0=$SECONDS
log() { printf '[bench %s +%dm%02ds] %s\n' "$(date +%H:%M:%S)" $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in REPEAT PUT1_TOTAL PUT100_TOTAL PUT1000_TOTAL TXN_TOTAL TXN_MIXED_TOTAL LEASE_TOTAL RANGE_TOTAL WATCH_LAT_PUTS WATCH_LAT_RATE WATCH_FANOUT_PUTS KEYS BIG_REPEAT STARTUP_REPEAT FSYNC_COUNT KEY_SIZE VAL_SIZE CLUSTER_PUT1_TOTAL CLUSTER_PUT100_TOTAL CLUSTER_RANGE_TOTAL; do
	is_uint "${!v}" && (( ${!v} > 0 )) || die "$v must be a positive integer, got '${!v}'"
done
for v in BIG_KEYS HUGE_KEYS BIG_QUOTA; do
	is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
(( HUGE_KEYS == 0 || (BIG_KEYS > 0 && HUGE_KEYS > BIG_KEYS) )) || die "HUGE_KEYS ($HUGE_KEYS) must be 0 or above BIG_KEYS ($BIG_KEYS)"
# The benchmark tool writes the key's index as a varint into the key.
(( KEY_SIZE >= 4 )) || die "KEY_SIZE must be at least 4, got $KEY_SIZE"
[[ $BENCH_CLUSTER == 0 || $BENCH_CLUSTER == 1 ]] || die "BENCH_CLUSTER must be 0 or 1, got '$BENCH_CLUSTER'"

read -r -a SERVER_LIST <<<"$SERVERS"
(( ${#SERVER_LIST[@]} >= 1 )) || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
	case $s in
	etcd) [[ -x $BENCH_ETCD ]] || die "$BENCH_ETCD not found; run: make bin/etcd" ;;
	sett) [[ -x $BENCH_SETT ]] || die "$BENCH_SETT not found; run: make build" ;;
	ceiling) ;;
	*) die "unknown server '$s' in SERVERS (known: etcd sett ceiling)" ;;
	esac
done
[[ -x $BENCH_TOOL ]] || die "$BENCH_TOOL not found; run: make bin/benchmark"
# Servers with storage: the ceiling has none to load, restart or measure.
STORAGE_SERVERS=()
for s in "${SERVER_LIST[@]}"; do [[ $s == ceiling ]] || STORAGE_SERVERS+=("$s"); done

# Keep a developer's ETCD_*/ETCDCTL_* variables from configuring the servers
# or the benchmark client.
while read -r v; do
	[[ $v == ETCD_UNSUPPORTED_ARCH ]] || unset "$v"
done < <(compgen -e | grep -E '^ETCD(CTL)?_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sett-bench.XXXXXX")
RESULTS=$WORK/results.tsv # figure <TAB> metric <TAB> unit <TAB> server <TAB> repeat <TAB> value
LABELS=$WORK/labels.tsv   # figure <TAB> label
META=$WORK/meta.tsv       # key <TAB> value: the run's description
: >"$RESULTS"
: >"$LABELS"
: >"$META"

BENCH_PID=""
SERVER_PID=""
SERVER_NAME=""
SERVER_DATA=""
SERVER_LOG=""
SERVER_CPORT=""
SERVER_PPORT=""
SERVER_EXTRA=()
ENDPOINT=""

stop_server() {
	local pid=$SERVER_PID
	[[ -n $pid ]] || return 0
	SERVER_PID=""
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$SERVER_NAME (pid $pid) did not stop within 15s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [[ -n $BENCH_PID ]]; then
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
	stop_server
	stop_cluster
	if [[ $KEEP_WORK == 1 ]]; then
		log "kept work dir $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
# The 3-member figures (before the trap: cleanup stops a cluster too).
# shellcheck source=bench/cluster.sh
source "$ROOT/bench/cluster.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# free_port sets PORT to a TCP port on 127.0.0.1 nobody listens on, outside
# Linux's ephemeral range and outside the range the Go test helpers use.
USED_PORTS=" "
free_port() {
	local p i
	for ((i = 0; i < 1000; i++)); do
		p=$((12000 + RANDOM % 8000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS+="$p "
			PORT=$p
			return 0
		fi
	done
	die "no free port found"
}

tail_log() {
	[[ -f $1 ]] || return 0
	echo "--- last lines of $1 ---" >&2
	tail -n 30 "$1" >&2
}

# --- helper programs ---------------------------------------------------------
# The ceiling, the start-up probe and the report are small main packages of
# the root module; the plot renderer is its own module (bench/plot) so that
# gonum stays out of the root go.mod.
HELPERS=$WORK/bin
build_helpers() {
	mkdir -p "$HELPERS"
	local p
	for p in ceiling startup report; do
		(cd "$ROOT" && go build -o "$HELPERS/$p" "./bench/$p") || die "building bench/$p failed"
	done
	if ! (cd "$ROOT/bench/plot" && GOWORK=off go build -o "$HELPERS/plot" .) >"$WORK/plot-build.log" 2>&1; then
		log "WARNING: building bench/plot failed (no plots in the report):"
		cat "$WORK/plot-build.log" >&2
	fi
}

# --- progress ----------------------------------------------------------------
# Every step has a weight, roughly its seconds on a 2-core machine; the
# progress line's estimate of the time left scales the elapsed time by the
# weight still to come.
TOTAL_W=0
DONE_W=0
plan_weights() {
	local per_server=$(((PUT1_TOTAL / 2000) + (PUT100_TOTAL / 10000) + (PUT1000_TOTAL / 10000) + 2 * (RANGE_TOTAL / 15000) \
		+ (TXN_TOTAL / 8000) + (TXN_MIXED_TOTAL / 100) + (LEASE_TOTAL / 15000) + (WATCH_LAT_PUTS / WATCH_LAT_RATE) + (WATCH_FANOUT_PUTS / 50) + 10))
	local per_ceiling=$(((PUT1_TOTAL / 4000) + (PUT100_TOTAL / 30000) + (PUT1000_TOTAL / 30000) + 2 * (RANGE_TOTAL / 30000) + 3))
	local s
	for s in "${SERVER_LIST[@]}"; do
		if [[ $s == ceiling ]]; then
			TOTAL_W=$((TOTAL_W + REPEAT * per_ceiling))
		else
			TOTAL_W=$((TOTAL_W + REPEAT * (per_server + KEYS / 9000 + 3)))
			if ((BIG_KEYS > 0)); then
				TOTAL_W=$((TOTAL_W + BIG_REPEAT * (BIG_KEYS / 9000 + 5 * STARTUP_REPEAT + 3)))
			fi
			if ((HUGE_KEYS > 0)); then
				TOTAL_W=$((TOTAL_W + BIG_REPEAT * ((HUGE_KEYS - BIG_KEYS) / 8000 + 10 * STARTUP_REPEAT + 3)))
			fi
			if [[ $BENCH_CLUSTER == 1 ]]; then
				TOTAL_W=$((TOTAL_W + REPEAT * $(cluster_weight)))
			fi
		fi
	done
	TOTAL_W=$((TOTAL_W + REPEAT * 2)) # fsync
}

# progress WEIGHT MESSAGE: one step is done.
progress() {
	DONE_W=$((DONE_W + $1))
	((DONE_W <= TOTAL_W)) || DONE_W=$TOTAL_W
	shift
	local elapsed=$((SECONDS - START)) left="?"
	if ((DONE_W > 0 && elapsed > 0)); then
		left=$((elapsed * (TOTAL_W - DONE_W) / DONE_W))
		left="~$((left / 60))m$(printf '%02d' $((left % 60)))s left"
	fi
	log "[$((100 * DONE_W / TOTAL_W))%, $left] $*"
}

# --- servers -----------------------------------------------------------------
# launch_server NAME starts SERVER_NAME's binary on SERVER_DATA, SERVER_CPORT
# and SERVER_PPORT in the background, with SERVER_EXTRA appended.
launch_server() {
	local name=$1
	SERVER_NAME=$name
	ENDPOINT=127.0.0.1:$SERVER_CPORT
	case $name in
	ceiling)
		"$HELPERS/ceiling" --listen="$ENDPOINT" >>"$SERVER_LOG" 2>&1 &
		;;
	etcd | sett)
		local bin=$BENCH_ETCD
		[[ $name == sett ]] && bin=$BENCH_SETT
		"$bin" \
			--name="$name" \
			--data-dir="$SERVER_DATA" \
			--listen-client-urls="http://$ENDPOINT" \
			--advertise-client-urls="http://$ENDPOINT" \
			--listen-peer-urls="http://127.0.0.1:$SERVER_PPORT" \
			--initial-advertise-peer-urls="http://127.0.0.1:$SERVER_PPORT" \
			--initial-cluster="$name=http://127.0.0.1:$SERVER_PPORT" \
			--log-level="$LOG_LEVEL" \
			"${SERVER_EXTRA[@]}" \
			>>"$SERVER_LOG" 2>&1 &
		;;
	esac
	SERVER_PID=$!
}

# ready_probe [ENDPOINT] reports whether ENDPOINT (default: the server's)
# answers a linearizable range (which needs an elected leader) without
# error.
ready_probe() {
	local out=$WORK/probe.out ep=${1:-$ENDPOINT}
	timeout 10 "$BENCH_TOOL" --endpoints="$ep" --dial-timeout=2s --precise \
		range bench-readiness-probe --consistency=l --total=1 >"$out" 2>/dev/null || return 1
	grep -q 'Requests/sec' "$out" && ! grep -q 'Error distribution' "$out"
}

# wait_ready waits until the launched server serves; it fails if the
# process exits first and dies if it is not ready within 60s.
wait_ready() {
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
		kill -0 "$SERVER_PID" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$SERVER_CPORT") 2>/dev/null && ready_probe; then
			return 0
		fi
		sleep 0.2
	done
	tail_log "$SERVER_LOG"
	die "$SERVER_NAME did not become ready within 60s"
}

# start_server NAME TAG [EXTRA-FLAGS...] starts a fresh server with a new
# data dir on new ports and waits until it serves requests.
start_server() {
	local name=$1 tag=$2 attempt
	shift 2
	SERVER_EXTRA=("$@")
	for attempt in 1 2 3; do
		free_port; SERVER_CPORT=$PORT
		free_port; SERVER_PPORT=$PORT
		SERVER_DATA=$WORK/$name-$tag.data
		SERVER_LOG=$WORK/$name-$tag.log
		rm -rf "$SERVER_DATA"
		mkdir -p "$SERVER_DATA"
		chmod 700 "$SERVER_DATA"
		launch_server "$name"
		wait_ready && return 0
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
		log "$name exited during startup (attempt $attempt; port clash?)"
		tail_log "$SERVER_LOG"
	done
	die "$name failed to start 3 times"
}

# --- measurements --------------------------------------------------------------
# label FIGURE TEXT names a figure in the report.
label() { printf '%s\t%s\n' "$1" "$2" >>"$LABELS"; }

# record FIGURE METRIC UNIT SERVER REPEAT VALUE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# bench_tool LABEL OUTFILE ARGS... runs the benchmark tool against ENDPOINT.
bench_tool() {
	local what=$1 out=$2
	shift 2
	# In the background, so that a signal to this script is handled (and
	# the tool stopped) at once rather than when the tool is done.
	"$BENCH_TOOL" --endpoints="$ENDPOINT" --dial-timeout=5s --precise "$@" >"$out" 2>>"$WORK/benchmark.stderr" &
	BENCH_PID=$!
	local rc=0
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	if ((rc != 0)); then
		tail_log "$out"
		tail_log "$SERVER_LOG"
		die "benchmark $what against $SERVER_NAME failed: $BENCH_TOOL $*"
	fi
}

PCTS=(10 25 50 75 90 95 99 99.9)

# parse_bench OUTFILE [SECTION] sets RPS, PCT (percentile -> ms) and ERRS
# from the benchmark tool's report, or from the report that follows the
# line SECTION when the tool prints several. The tool leaves out
# percentiles that are zero (a watch event that arrived before its put's
# response), so a report with a summary but no such line means 0.
declare -A PCT=()
parse_bench() {
	local f=$1 section=${2:-} text
	if [[ -n $section ]]; then
		text=$(awk -v s="$section" 'found { print } index($0, s) == 1 { found = 1 }' "$f")
	else
		text=$(cat "$f")
	fi
	RPS=$(awk '/Requests\/sec:/ { printf "%.1f", $2; found = 1; exit } END { if (!found) print "" }' <<<"$text")
	ERRS=$(awk '/^Error distribution:/ { on = 1; next }
		on && match($0, /\[[0-9]+\]/) { n += substr($0, RSTART + 1, RLENGTH - 2) }
		END { print n + 0 }' <<<"$text")
	[[ -n $RPS ]] || { tail_log "$f"; die "could not parse benchmark output $f${section:+ (section '$section')}"; }
	# A missing percentile below a printed one was zero; one above every
	# printed percentile had too few samples (small totals) and stays unset.
	local i p v zero=1
	PCT=()
	for ((i = ${#PCTS[@]} - 1; i >= 0; i--)); do
		p=${PCTS[$i]}
		v=$(awk -v p="$p%" '$1 == p && $2 == "in" { printf "%.4f", $3 * 1000; exit }' <<<"$text")
		if [[ -n $v ]]; then
			PCT[$p]=$v
			zero=0
		elif ((!zero)); then
			PCT[$p]=0
		fi
	done
}

# measure FIGURE SERVER REPEAT [OPTIONS] -- ARGS...: run one benchmark and
# record its throughput and latency percentiles. OPTIONS:
#   --section=S   read the report after the line S (tools printing several)
#   --unit=U      throughput unit (default req/s)
#   --no-rate     do not record the throughput
#   --no-latency  do not record the percentiles
#   --weight=W    progress weight
measure() {
	local fig=$1 server=$2 rep=$3 section="" unit="req/s" rate=1 latency=1 weight=3
	shift 3
	while [[ $1 != -- ]]; do
		case $1 in
		--section=*) section=${1#*=} ;;
		--unit=*) unit=${1#*=} ;;
		--no-rate) rate=0 ;;
		--no-latency) latency=0 ;;
		--weight=*) weight=${1#*=} ;;
		*) die "measure: unknown option $1" ;;
		esac
		shift
	done
	shift
	local out=$WORK/$server-$rep-$fig.out
	bench_tool "$fig" "$out" "$@"
	parse_bench "$out" "$section"
	if ((ERRS > 0)); then
		log "WARNING: $server: $fig: $ERRS requests failed:"
		sed -n '/^Error distribution:/,$p' "$out" >&2
		record "$fig" failed count "$server" "$rep" "$ERRS"
	fi
	local msg="$server: $fig:" p
	if ((rate)); then
		record "$fig" throughput "$unit" "$server" "$rep" "$RPS"
		msg+=" $RPS $unit"
	fi
	if ((latency)); then
		for p in "${PCTS[@]}"; do
			[[ -z ${PCT[$p]+x} ]] || record "$fig" "p$p" ms "$server" "$rep" "${PCT[$p]}"
		done
		msg+=" p50 ${PCT[50]:-?} ms, p99 ${PCT[99]:-?} ms"
	fi
	((ERRS == 0)) || msg+=", $ERRS FAILED REQUESTS"
	progress "$weight" "[$rep/$REPEAT] $msg"
}

# record_footprint FIGURE SERVER REPEAT KEYS: RSS, peak RSS and data dir
# size of the running server after a load.
record_footprint() {
	local fig=$1 server=$2 rep=$3 keys=$4
	sleep 2 # let background flushing settle before measuring
	local rss hwm size alloc
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
	size=$(du -sb "$SERVER_DATA" | cut -f1)
	alloc=$(du -s --block-size=1 "$SERVER_DATA" | cut -f1)
	record "$fig" keys count "$server" "$rep" "$keys"
	record "$fig" rss MiB "$server" "$rep" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
	record "$fig" rss_peak MiB "$server" "$rep" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
	record "$fig" disk MiB "$server" "$rep" "$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')"
	record "$fig" disk_alloc MiB "$server" "$rep" "$(awk -v b="$alloc" 'BEGIN { printf "%.1f", b / 1048576 }')"
	log "    $server with $keys keys: RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB), data dir $((size / 1048576)) MiB apparent, $((alloc / 1048576)) MiB allocated"
}

# The key the range figures read: with --key-size=1, --sequential-keys and
# --key-space-size=2 the benchmark tool writes the keys varint(0) = "\x00"
# and varint(1) = "\x02"; the latter can be passed on a command line.
RANGE_KEY=$'\x02'

label put1 "put, 1 client/1 conn"
label put100 "put, 100 clients/10 conns"
label put1000 "put, 1000 clients/100 conns"
label range_s "range serializable, 100 clients/10 conns"
label range_l "range linearizable, 100 clients/10 conns"
label txn_put "txn-put, 100 clients/10 conns"
# txn-mixed's reads are ranges over the whole key space with limit 10; the
# figures before it leave about this many keys in the store.
MIXED_KEYS=$((PUT1_TOTAL + PUT100_TOTAL + 2 + (TXN_TOTAL < 10000 ? TXN_TOTAL : 10000)))
label txn_mixed "txn-mixed (1 write : 1 read of all ~$((MIXED_KEYS / 1000))k keys with limit 10), 100 clients/10 conns"
label lease "lease keep-alive, 100 clients/10 conns"
label watch_latency "watch latency, put to event: 100 watchers (10 streams) on 1 key, $WATCH_LAT_RATE puts/s"
label watch_fanout "watch fan-out: 1000 watchers (10 streams) on 1 key, 10 putting clients"
label load "load $KEYS keys, 100 clients/10 conns"

run_figures() {
	local server=$1 rep=$2 kv=(--key-size="$KEY_SIZE" --val-size="$VAL_SIZE")
	start_server "$server" "figures-$rep"
	local w1=$((PUT1_TOTAL / 2000 + 1)) w100=$((PUT100_TOTAL / 10000 + 1)) w1000=$((PUT1000_TOTAL / 10000 + 1)) wr=$((RANGE_TOTAL / 15000 + 1))
	if [[ $server == ceiling ]]; then
		w1=$((PUT1_TOTAL / 4000 + 1)) w100=$((PUT100_TOTAL / 30000 + 1)) w1000=$((PUT1000_TOTAL / 30000 + 1)) wr=$((RANGE_TOTAL / 30000 + 1))
	fi
	measure put1 "$server" "$rep" --weight=$w1 -- \
		--clients=1 --conns=1 put "${kv[@]}" --sequential-keys --key-space-size="$PUT1_TOTAL" --total="$PUT1_TOTAL"
	measure put100 "$server" "$rep" --weight=$w100 -- \
		--clients=100 --conns=10 put "${kv[@]}" --sequential-keys --key-space-size="$PUT100_TOTAL" --total="$PUT100_TOTAL"
	bench_tool "range key setup" "$WORK/$server-$rep-rangekey.out" \
		--clients=1 --conns=1 put --key-size=1 --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size=2 --total=2
	measure range_s "$server" "$rep" --weight=$wr -- \
		--clients=100 --conns=10 range "$RANGE_KEY" --consistency=s --total="$RANGE_TOTAL"
	measure range_l "$server" "$rep" --weight=$wr -- \
		--clients=100 --conns=10 range "$RANGE_KEY" --consistency=l --total="$RANGE_TOTAL"
	if [[ $server != ceiling ]]; then
		measure txn_put "$server" "$rep" --weight=$((TXN_TOTAL / 8000 + 1)) -- \
			--clients=100 --conns=10 txn-put "${kv[@]}" --key-space-size=10000 --total="$TXN_TOTAL"
		measure txn_mixed "$server" "$rep" --weight=$((TXN_MIXED_TOTAL / 100 + 1)) -- \
			--clients=100 --conns=10 txn-mixed "${kv[@]}" --key-space-size=1000 --limit=10 --total="$TXN_MIXED_TOTAL"
		measure lease "$server" "$rep" --weight=$((LEASE_TOTAL / 15000 + 1)) -- \
			--clients=100 --conns=10 lease-keepalive --total="$LEASE_TOTAL"
	fi
	# After txn-mixed: its reads count every key in the store, so the puts
	# before it fix its cost (and keep it comparable with earlier reports).
	measure put1000 "$server" "$rep" --weight=$w1000 -- \
		--clients=1000 --conns=100 put "${kv[@]}" --sequential-keys --key-space-size="$PUT1000_TOTAL" --total="$PUT1000_TOTAL"
	if [[ $server != ceiling ]]; then
		# Latency from a put's response to each watcher's event (the
		# tool's "Watch events summary"; its rate there is meaningless).
		measure watch_latency "$server" "$rep" --section="Watch events summary:" --no-rate --weight=$((WATCH_LAT_PUTS / WATCH_LAT_RATE + 1)) -- \
			--clients=10 --conns=10 watch-latency "${kv[@]}" --streams=10 --watchers-per-stream=10 \
			--put-total="$WATCH_LAT_PUTS" --put-rate="$WATCH_LAT_RATE"
		# Events delivered per second to 1000 watchers of one key (the
		# tool's per-event "latency" there is only its own bookkeeping).
		measure watch_fanout "$server" "$rep" --section="Watch events received summary:" --unit=events/s --no-latency --weight=$((WATCH_FANOUT_PUTS / 50 + 1)) -- \
			--clients=10 --conns=10 watch --streams=10 --watch-per-stream=100 --watched-key-total=1 \
			--key-size="$KEY_SIZE" --put-total="$WATCH_FANOUT_PUTS"
	fi
	stop_server
	rm -rf "$SERVER_DATA"
}

run_load() {
	local server=$1 rep=$2
	start_server "$server" "load-$rep"
	measure load "$server" "$rep" --weight=$((KEYS / 9000 + 1)) -- \
		--clients=100 --conns=10 put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$KEYS" --total="$KEYS"
	record_footprint load "$server" "$rep" "$KEYS"
	stop_server
	rm -rf "$SERVER_DATA"
}

# measure_startups FIGURE SERVER REPEAT: restart the stopped server on its
# data dir STARTUP_REPEAT times and record the time from launch to its
# first linearizable Get, and its RSS then.
measure_startups() {
	local fig=$1 server=$2 rep=$3 i t0 ms rss
	for ((i = 1; i <= STARTUP_REPEAT; i++)); do
		t0=${EPOCHREALTIME/[.,]/}
		launch_server "$server"
		ms=$("$HELPERS/startup" --endpoint="$ENDPOINT" --since="$t0" --timeout=10m) || {
			tail_log "$SERVER_LOG"
			die "$server did not serve a linearizable Get after restarting"
		}
		rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status")
		record "$fig" startup ms "$server" "$(((rep - 1) * STARTUP_REPEAT + i))" "$ms"
		record "$fig" rss MiB "$server" "$(((rep - 1) * STARTUP_REPEAT + i))" "$rss"
		stop_server
		progress 5 "[$i/$STARTUP_REPEAT] $server: $fig: serving after $ms ms, RSS $rss MiB"
	done
}

# run_big SERVER REPEAT: one server loads BIG_KEYS keys (RSS, disk), is
# restarted on them (start-up time), and in long mode loads on to
# HUGE_KEYS keys (RSS, disk, start-up time again). The extra keys are one
# byte longer than the first ones, so that they are all new keys.
run_big() {
	local server=$1 rep=$2
	start_server "$server" "big-$rep" --quota-backend-bytes="$BIG_QUOTA"
	measure load_big "$server" "$rep" --weight=$((BIG_KEYS / 9000 + 1)) -- \
		--clients=100 --conns=10 put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$BIG_KEYS" --total="$BIG_KEYS"
	record_footprint load_big "$server" "$rep" "$BIG_KEYS"
	stop_server
	measure_startups startup_big "$server" "$rep"
	if ((HUGE_KEYS > 0)); then
		local more=$((HUGE_KEYS - BIG_KEYS))
		launch_server "$server"
		wait_ready || die "$server did not restart on its $BIG_KEYS keys"
		measure load_huge "$server" "$rep" --weight=$((more / 8000 + 1)) -- \
			--clients=100 --conns=10 put --key-size="$((KEY_SIZE + 1))" --val-size="$VAL_SIZE" \
			--sequential-keys --key-space-size="$more" --total="$more"
		record_footprint load_huge "$server" "$rep" "$HUGE_KEYS"
		stop_server
		measure_startups startup_huge "$server" "$rep"
	fi
	rm -rf "$SERVER_DATA"
}

# measure_fsync REPEAT: the cost of one small durable write on the file
# system of the data dirs, as dd's mean over FSYNC_COUNT 4 KiB O_DSYNC
# writes: over blocks written before (the cheapest durable write: data
# only), and appending (the file's size changes too).
measure_fsync() {
	local rep=$1 f=$WORK/fsync.test mode out secs
	label fsync "4 KiB write + fdatasync (dd oflag=dsync, mean of $FSYNC_COUNT)"
	for mode in overwrite append; do
		rm -f "$f"
		if [[ $mode == overwrite ]]; then
			dd if=/dev/zero of="$f" bs=4k count="$FSYNC_COUNT" conv=fsync status=none
			out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=4k count="$FSYNC_COUNT" oflag=dsync conv=notrunc 2>&1)
		else
			out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=4k count="$FSYNC_COUNT" oflag=dsync 2>&1)
		fi
		secs=$(awk 'match($0, /copied, [0-9.e+-]+ s/) { split(substr($0, RSTART, RLENGTH), a, " "); print a[2] }' <<<"$out")
		[[ -n $secs ]] || die "could not parse dd's output: $out"
		record fsync "$mode" ms machine "$rep" "$(awk -v s="$secs" -v n="$FSYNC_COUNT" 'BEGIN { printf "%.4f", s * 1000 / n }')"
	done
	rm -f "$f"
	progress 2 "[$rep/$REPEAT] fsync of a 4 KiB write measured"
}

# --- run ---------------------------------------------------------------------
log "work dir $WORK; servers: ${SERVER_LIST[*]}; REPEAT=$REPEAT KEYS=$KEYS BIG_KEYS=$BIG_KEYS HUGE_KEYS=$HUGE_KEYS BENCH_CLUSTER=$BENCH_CLUSTER"
log "building the helper programs"
build_helpers
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START=$SECONDS
plan_weights
if ((BIG_KEYS > 0)); then
	label load_big "load $BIG_KEYS keys, 100 clients/10 conns"
	label startup_big "start-up with $BIG_KEYS keys"
fi
if ((HUGE_KEYS > 0)); then
	label load_huge "load on to $HUGE_KEYS keys (the $((HUGE_KEYS - BIG_KEYS)) more), 100 clients/10 conns"
	label startup_huge "start-up with $HUGE_KEYS keys"
fi
if [[ $BENCH_CLUSTER == 1 ]]; then
	label_cluster_figures
fi
for ((rep = 1; rep <= REPEAT; rep++)); do
	# Alternate which server goes first, so that neither always runs on a
	# cold (or warm) machine.
	order=("${SERVER_LIST[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do order+=("${SERVER_LIST[$i]}"); done
	fi
	measure_fsync "$rep"
	for s in "${order[@]}"; do run_figures "$s" "$rep"; done
	for s in "${order[@]}"; do [[ $s == ceiling ]] || run_load "$s" "$rep"; done
	if [[ $BENCH_CLUSTER == 1 ]]; then
		for s in "${order[@]}"; do [[ $s == ceiling ]] || run_cluster "$s" "$rep"; done
	fi
done
if ((BIG_KEYS > 0)); then
	for ((rep = 1; rep <= BIG_REPEAT; rep++)); do
		for s in "${STORAGE_SERVERS[@]}"; do run_big "$s" "$rep"; done
	done
fi
ELAPSED=$((SECONDS - START))

# --- report --------------------------------------------------------------------
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
go_version=$(go version 2>/dev/null || echo "go: not found")
etcd_version=$("$BENCH_ETCD" --version 2>/dev/null | awk '/^etcd Version:/ { print "etcd " $3 }' || true)
data_fs=$(df -PT "$WORK" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)
sett_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "unknown")
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n1) ]]; then sett_rev+=" (dirty)"; fi
mode="default"
[[ $BENCH_LONG == 1 ]] && mode="long (BENCH_LONG=1)"
members="Single members on 127.0.0.1" cluster_settings="BENCH_CLUSTER=$BENCH_CLUSTER"
if [[ $BENCH_CLUSTER == 1 ]]; then
	members+=", then 3-member clusters (one at a time, default heartbeat, election timeout and snapshot count)"
	cluster_settings+=" CLUSTER_PUT1_TOTAL=$CLUSTER_PUT1_TOTAL CLUSTER_PUT100_TOTAL=$CLUSTER_PUT100_TOTAL CLUSTER_RANGE_TOTAL=$CLUSTER_RANGE_TOTAL"
fi
meta "Machine" "$(nproc) CPUs${cpu_model:+ ($cpu_model)}, $mem_total RAM, $(uname -sr), $go_version"
meta "Load average" "$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (a busy machine makes every figure noisy)"
meta "Servers" "${etcd_version:-etcd}; sett $sett_rev; ceiling = bench/ceiling. $members, fresh data dirs in $(dirname "$WORK") ($data_fs), --log-level=$LOG_LEVEL; both fsync every acknowledged write"
meta "Client" "etcd's benchmark tool (${BENCH_TOOL#"$ROOT"/}); keys $KEY_SIZE bytes, values $VAL_SIZE bytes"
meta "Settings" "$mode; REPEAT=$REPEAT PUT1_TOTAL=$PUT1_TOTAL PUT100_TOTAL=$PUT100_TOTAL PUT1000_TOTAL=$PUT1000_TOTAL RANGE_TOTAL=$RANGE_TOTAL TXN_TOTAL=$TXN_TOTAL TXN_MIXED_TOTAL=$TXN_MIXED_TOTAL LEASE_TOTAL=$LEASE_TOTAL WATCH_LAT_PUTS=$WATCH_LAT_PUTS WATCH_LAT_RATE=$WATCH_LAT_RATE WATCH_FANOUT_PUTS=$WATCH_FANOUT_PUTS KEYS=$KEYS BIG_KEYS=$BIG_KEYS (x$BIG_REPEAT) HUGE_KEYS=$HUGE_KEYS STARTUP_REPEAT=$STARTUP_REPEAT $cluster_settings"
meta "Run" "took ${ELAPSED}s, finished $(date -u +%Y-%m-%dT%H:%MZ)"

mkdir -p "$OUT_DIR"
# From the checkout, which the report names paths relative to.
report() {
	(cd "$ROOT" && "$HELPERS/report" --results="$RESULTS" --labels="$LABELS" --meta="$META" --servers="${SERVER_LIST[*]}" \
		--out="$OUT_DIR" --plot-spec="$WORK/plots.json" --e2e="$E2E_TIMINGS" --title="sett vs ${etcd_version:-etcd} — $(date -u +%Y-%m-%d)" "$@")
}
report --clear-plots || die "rendering the report failed"
if [[ -x $HELPERS/plot ]]; then
	"$HELPERS/plot" --spec="$WORK/plots.json" --out="$OUT_DIR" || log "WARNING: rendering the plots failed"
	report || die "rendering the report failed"
fi
[[ -f $E2E_TIMINGS ]] && log "included the Kubernetes workload timings of $E2E_TIMINGS"
DONE_W=$TOTAL_W
log "[100%] done in ${ELAPSED}s; wrote $OUT_DIR/latest.md, latest.csv, latest-raw.csv and the plots"
cat "$OUT_DIR/latest.md"
