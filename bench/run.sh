#!/usr/bin/env bash
# bench/run.sh -- sett vs real etcd, measured with etcd's own benchmark tool,
# in one run on one machine. See bench/README.md.
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

REPEAT=${REPEAT:-3}               # runs of every figure per server
PUT1_TOTAL=${PUT1_TOTAL:-5000}    # puts with 1 client over 1 connection
PUT100_TOTAL=${PUT100_TOTAL:-50000} # puts with 100 clients over 10 connections
TXN_TOTAL=${TXN_TOTAL:-30000}       # txn-put and txn-mixed requests
LEASE_TOTAL=${LEASE_TOTAL:-50000}   # lease keep-alive requests
RANGE_TOTAL=${RANGE_TOTAL:-100000} # ranges (each consistency) with 100 clients over 10 connections
if [[ ${BENCH_LONG:-0} == 1 ]]; then
	KEYS=${KEYS:-1000000}
else
	KEYS=${KEYS:-100000}
fi
KEY_SIZE=${KEY_SIZE:-8}
VAL_SIZE=${VAL_SIZE:-256}
SERVERS=${SERVERS:-etcd sett}     # first one is the baseline of the ratio column
LOG_LEVEL=${LOG_LEVEL:-warn}      # --log-level of both servers
KEEP_WORK=${KEEP_WORK:-0}         # 1: keep the temporary data dirs and logs

# --- helpers ---------------------------------------------------------------
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in REPEAT PUT1_TOTAL PUT100_TOTAL TXN_TOTAL LEASE_TOTAL RANGE_TOTAL KEYS KEY_SIZE VAL_SIZE; do
	is_uint "${!v}" && (( ${!v} > 0 )) || die "$v must be a positive integer, got '${!v}'"
done
# The benchmark tool writes the key's index as a varint into the key.
(( KEY_SIZE >= 4 )) || die "KEY_SIZE must be at least 4, got $KEY_SIZE"

read -r -a SERVER_LIST <<<"$SERVERS"
(( ${#SERVER_LIST[@]} >= 1 )) || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
	case $s in
	etcd) [[ -x $BENCH_ETCD ]] || die "$BENCH_ETCD not found; run: make bin/etcd" ;;
	sett) [[ -x $BENCH_SETT ]] || die "$BENCH_SETT not found; run: make build" ;;
	*) die "unknown server '$s' in SERVERS (known: etcd sett)" ;;
	esac
done
[[ -x $BENCH_TOOL ]] || die "$BENCH_TOOL not found; run: make bin/benchmark"

# Keep a developer's ETCD_*/ETCDCTL_* variables from configuring the servers
# or the benchmark client.
while read -r v; do
	[[ $v == ETCD_UNSUPPORTED_ARCH ]] || unset "$v"
done < <(compgen -e | grep -E '^ETCD(CTL)?_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sett-bench.XXXXXX")
RESULTS=$WORK/results.tsv # figure <TAB> unit <TAB> server <TAB> repeat <TAB> value
: >"$RESULTS"
FIGURES=() # figure names in order of first appearance
declare -A FIGURE_UNIT=()

BENCH_PID=""
SERVER_PID=""
SERVER_NAME=""
SERVER_DATA=""
SERVER_LOG=""
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
	if [[ $KEEP_WORK == 1 ]]; then
		log "kept work dir $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
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

# bench_tool LABEL OUTFILE ARGS... runs the benchmark tool against ENDPOINT.
bench_tool() {
	local label=$1 out=$2
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
		die "benchmark $label against $SERVER_NAME failed: $BENCH_TOOL $*"
	fi
}

# ready_probe reports whether ENDPOINT answers a linearizable range (which
# needs an elected leader) without error.
ready_probe() {
	local out=$WORK/probe.out
	timeout 10 "$BENCH_TOOL" --endpoints="$ENDPOINT" --dial-timeout=2s --precise \
		range bench-readiness-probe --consistency=l --total=1 >"$out" 2>/dev/null || return 1
	grep -q 'Requests/sec' "$out" && ! grep -q 'Error distribution' "$out"
}

# start_server NAME TAG starts a fresh server with a new data dir and waits
# until it serves requests.
start_server() {
	local name=$1 tag=$2 bin attempt cport pport
	case $name in
	etcd) bin=$BENCH_ETCD ;;
	sett) bin=$BENCH_SETT ;;
	esac
	for attempt in 1 2 3; do
		free_port; cport=$PORT
		free_port; pport=$PORT
		SERVER_NAME=$name
		SERVER_DATA=$WORK/$name-$tag.data
		SERVER_LOG=$WORK/$name-$tag.log
		ENDPOINT=127.0.0.1:$cport
		rm -rf "$SERVER_DATA"
		mkdir -p "$SERVER_DATA"
		chmod 700 "$SERVER_DATA"
		"$bin" \
			--name="$name" \
			--data-dir="$SERVER_DATA" \
			--listen-client-urls="http://127.0.0.1:$cport" \
			--advertise-client-urls="http://127.0.0.1:$cport" \
			--listen-peer-urls="http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls="http://127.0.0.1:$pport" \
			--initial-cluster="$name=http://127.0.0.1:$pport" \
			--log-level="$LOG_LEVEL" \
			>>"$SERVER_LOG" 2>&1 &
		SERVER_PID=$!
		local deadline=$((SECONDS + 60))
		while ((SECONDS < deadline)); do
			if ! kill -0 "$SERVER_PID" 2>/dev/null; then
				break
			fi
			if (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null && ready_probe; then
				return 0
			fi
			sleep 0.2
		done
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			tail_log "$SERVER_LOG"
			die "$name did not become ready within 60s"
		fi
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
		log "$name exited during startup (attempt $attempt; port clash?)"
		tail_log "$SERVER_LOG"
	done
	die "$name failed to start 3 times"
}

# record FIGURE UNIT SERVER REPEAT VALUE
record() {
	local fig=$1 unit=$2
	if [[ -z ${FIGURE_UNIT[$fig]+x} ]]; then
		FIGURES+=("$fig")
		FIGURE_UNIT[$fig]=$unit
	fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$fig" "$unit" "$3" "$4" "$5" >>"$RESULTS"
}

# parse_bench OUTFILE sets RPS, P50, P99 (milliseconds) and ERRS.
parse_bench() {
	local f=$1
	RPS=$(awk '/Requests\/sec:/ { printf "%.1f", $2; found = 1 } END { if (!found) print "" }' "$f")
	P50=$(awk '$1 == "50%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$f")
	P99=$(awk '$1 == "99%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$f")
	ERRS=$(awk '/^Error distribution:/ { on = 1; next }
		on && match($0, /\[[0-9]+\]/) { n += substr($0, RSTART + 1, RLENGTH - 2) }
		END { print n + 0 }' "$f")
	[[ -n $RPS && -n $P50 && -n $P99 ]] || { tail_log "$f"; die "could not parse benchmark output $f"; }
}

# measure FIGURE SERVER REPEAT ARGS...: run one benchmark, record req/s and
# latency percentiles.
measure() {
	local fig=$1 server=$2 rep=$3
	shift 3
	local out=$WORK/$server-$rep-${fig//[^a-zA-Z0-9]/_}.out
	bench_tool "$fig" "$out" "$@"
	parse_bench "$out"
	if ((ERRS > 0)); then
		log "WARNING: $server: $fig: $ERRS requests failed:"
		sed -n '/^Error distribution:/,$p' "$out" >&2
		record "$fig: failed requests" "count" "$server" "$rep" "$ERRS"
	fi
	record "$fig" "req/s" "$server" "$rep" "$RPS"
	record "$fig p50" "ms" "$server" "$rep" "$P50"
	record "$fig p99" "ms" "$server" "$rep" "$P99"
	local suffix=""
	((ERRS == 0)) || suffix=", $ERRS FAILED REQUESTS"
	log "[$rep/$REPEAT] $server: $fig: $RPS req/s, p50 $P50 ms, p99 $P99 ms$suffix"
}

# The key the range figures read: with --key-size=1, --sequential-keys and
# --key-space-size=2 the benchmark tool writes the keys varint(0) = "\x00"
# and varint(1) = "\x02"; the latter can be passed on a command line.
RANGE_KEY=$'\x02'

run_figures() {
	local server=$1 rep=$2
	start_server "$server" "figures-$rep"
	measure "put, 1 client/1 conn" "$server" "$rep" \
		--clients=1 --conns=1 put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$PUT1_TOTAL" --total="$PUT1_TOTAL"
	measure "put, 100 clients/10 conns" "$server" "$rep" \
		--clients=100 --conns=10 put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$PUT100_TOTAL" --total="$PUT100_TOTAL"
	bench_tool "range key setup" "$WORK/$server-$rep-rangekey.out" \
		--clients=1 --conns=1 put --key-size=1 --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size=2 --total=2
	measure "range serializable, 100 clients/10 conns" "$server" "$rep" \
		--clients=100 --conns=10 range "$RANGE_KEY" --consistency=s --total="$RANGE_TOTAL"
	measure "range linearizable, 100 clients/10 conns" "$server" "$rep" \
		--clients=100 --conns=10 range "$RANGE_KEY" --consistency=l --total="$RANGE_TOTAL"
	measure "txn-put, 100 clients/10 conns" "$server" "$rep" \
		--clients=100 --conns=10 txn-put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--key-space-size=10000 --total="$TXN_TOTAL"
	measure "txn-mixed (1 read : 1 write), 100 clients/10 conns" "$server" "$rep" \
		--clients=100 --conns=10 txn-mixed --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--key-space-size=1000 --limit=10 --total="$TXN_TOTAL"
	measure "lease keep-alive, 100 clients/10 conns" "$server" "$rep" \
		--clients=100 --conns=10 lease-keepalive --total="$LEASE_TOTAL"
	stop_server
	rm -rf "$SERVER_DATA"
}

run_load() {
	local server=$1 rep=$2
	start_server "$server" "load-$rep"
	local fig="load $KEYS keys, 100 clients/10 conns"
	measure "$fig" "$server" "$rep" \
		--clients=100 --conns=10 put --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$KEYS" --total="$KEYS"
	sleep 2 # let background flushing settle before measuring
	local rss hwm size alloc
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
	size=$(du -sb "$SERVER_DATA" | cut -f1)
	alloc=$(du -s --block-size=1 "$SERVER_DATA" | cut -f1)
	record "RSS after load ($KEYS keys)" "MiB" "$server" "$rep" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
	record "peak RSS during load ($KEYS keys)" "MiB" "$server" "$rep" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
	record "data dir, apparent size (du -sb)" "MiB" "$server" "$rep" "$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')"
	record "data dir, allocated on disk (du -s)" "MiB" "$server" "$rep" "$(awk -v b="$alloc" 'BEGIN { printf "%.1f", b / 1048576 }')"
	log "[$rep/$REPEAT] $server: after loading $KEYS keys: RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB), data dir $((size / 1048576)) MiB apparent, $((alloc / 1048576)) MiB allocated"
	stop_server
	rm -rf "$SERVER_DATA"
}

# --- run ---------------------------------------------------------------------
log "work dir $WORK; servers: ${SERVER_LIST[*]}; REPEAT=$REPEAT PUT1_TOTAL=$PUT1_TOTAL PUT100_TOTAL=$PUT100_TOTAL TXN_TOTAL=$TXN_TOTAL LEASE_TOTAL=$LEASE_TOTAL RANGE_TOTAL=$RANGE_TOTAL KEYS=$KEYS"
START=$SECONDS
for ((rep = 1; rep <= REPEAT; rep++)); do
	# Alternate which server goes first, so that neither always runs on a
	# cold (or warm) machine.
	order=("${SERVER_LIST[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do order+=("${SERVER_LIST[$i]}"); done
	fi
	for s in "${order[@]}"; do run_figures "$s" "$rep"; done
	for s in "${order[@]}"; do run_load "$s" "$rep"; done
done
ELAPSED=$((SECONDS - START))

# --- report --------------------------------------------------------------------
mkdir -p "$OUT_DIR"
CSV=$OUT_DIR/latest.csv
RAW=$OUT_DIR/latest-raw.csv
MD=$OUT_DIR/latest.md

# summarize FIGURE SERVER prints "median min max n" of the recorded values.
summarize() {
	awk -F'\t' -v fig="$1" -v srv="$2" '$1 == fig && $3 == srv { v[n++] = $5 }
		END {
			if (n == 0) { print "- - - 0"; exit }
			for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] + 0 > x + 0; j--) v[j + 1] = v[j]; v[j + 1] = x }
			med = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
			printf "%s %s %s %d\n", med, v[0], v[n - 1], n
		}' "$RESULTS"
}

# fmtnum VALUE UNIT: req/s as integers, MiB with one decimal, latencies with
# three significant digits.
fmtnum() {
	awk -v x="$1" -v unit="$2" 'BEGIN {
		if (x == "-") { print "-"; exit }
		a = (x < 0) ? -x : x
		if (unit == "MiB") printf "%.1f", x
		else if (a >= 100) printf "%.0f", x
		else if (a >= 10) printf "%.1f", x
		else if (a >= 1) printf "%.2f", x
		else printf "%.3f", x
	}'
}

csvq() { local s=${1//\"/\"\"}; printf '"%s"' "$s"; }

BASE=${SERVER_LIST[0]}
{
	header="| figure |"
	sep="|---|"
	for s in "${SERVER_LIST[@]}"; do header+=" $s (median, min–max) |"; sep+="---|"; done
	for s in "${SERVER_LIST[@]:1}"; do header+=" $s/$BASE |"; sep+="---|"; done
	echo "$header"
	echo "$sep"
} >"$MD"
{
	printf 'figure,unit'
	for s in "${SERVER_LIST[@]}"; do printf ',%s_median,%s_min,%s_max,%s_n' "$s" "$s" "$s" "$s"; done
	for s in "${SERVER_LIST[@]:1}"; do printf ',%s_over_%s' "$s" "$BASE"; done
	printf '\n'
} >"$CSV"
for fig in "${FIGURES[@]}"; do
	unit=${FIGURE_UNIT[$fig]}
	row="| $fig ($unit) |"
	csvrow="$(csvq "$fig"),$(csvq "$unit")"
	declare -A MED=()
	for s in "${SERVER_LIST[@]}"; do
		read -r med lo hi n < <(summarize "$fig" "$s")
		MED[$s]=$med
		if [[ $med == - ]]; then
			row+=" – |"
		else
			row+=" $(fmtnum "$med" "$unit") ($(fmtnum "$lo" "$unit")–$(fmtnum "$hi" "$unit")) |"
		fi
		csvrow+=",$med,$lo,$hi,$n"
	done
	for s in "${SERVER_LIST[@]:1}"; do
		ratio=$(awk -v a="${MED[$s]}" -v b="${MED[$BASE]}" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }')
		row+=" $ratio |"
		csvrow+=",$ratio"
	done
	unset MED
	echo "$row" >>"$MD"
	echo "$csvrow" >>"$CSV"
done
{
	echo "figure,unit,server,repeat,value"
	awk -F'\t' '{ gsub(/"/, "\"\"", $1); printf "\"%s\",%s,%s,%s,%s\n", $1, $2, $3, $4, $5 }' "$RESULTS"
} >"$RAW"

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
go_version=$(go version 2>/dev/null || echo "go: not found")
etcd_version=$("$BENCH_ETCD" --version 2>/dev/null | head -n1 || true)
data_fs=$(df -PT "$WORK" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)
sett_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "unknown")
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n1) ]]; then sett_rev+=" (dirty)"; fi
{
	echo
	echo "Machine: $(nproc) CPUs${cpu_model:+ ($cpu_model)}, $mem_total RAM, $(uname -sr), $go_version"
	echo "Servers: $etcd_version; sett $sett_rev. Both single-member, on 127.0.0.1, fresh data dirs in $(dirname "$WORK") ($data_fs), --log-level=$LOG_LEVEL."
	echo "Settings: REPEAT=$REPEAT, key size $KEY_SIZE, value size $VAL_SIZE, PUT1_TOTAL=$PUT1_TOTAL, PUT100_TOTAL=$PUT100_TOTAL, TXN_TOTAL=$TXN_TOTAL, LEASE_TOTAL=$LEASE_TOTAL, RANGE_TOTAL=$RANGE_TOTAL, KEYS=$KEYS. Run took ${ELAPSED}s ($(date -u +%Y-%m-%dT%H:%MZ))."
	echo "Ratio = median of ${SERVER_LIST[*]:1} / median of $BASE: above 1 is better for req/s, below 1 is better for latency, memory and disk."
} >>"$MD"

log "done in ${ELAPSED}s; wrote $CSV, $RAW and $MD"
cat "$MD"
