# bench/cluster.sh -- the 3-member figures of bench/run.sh, which sources
# this file and provides the helpers it uses (log, die, free_port,
# ready_probe, measure, bench_tool, progress, label, tail_log).
#
# Each server runs as a cluster of three members on 127.0.0.1, started
# with the same etcd flags (fresh data dirs, distinct ports, fsync on, the
# default heartbeat, election timeout and snapshot count). Only one
# cluster runs at a time, and no single member runs beside it.

CLUSTER_SIZE=3
CLUSTER_PIDS=()     # one per member, empty once stopped
CLUSTER_CPORTS=()
CLUSTER_LOGS=()
CLUSTER_DATA=()

# stop_cluster stops every member of the running cluster (SIGTERM to all
# at once, SIGKILL to those still running after 15 s).
stop_cluster() {
	local pids=("${CLUSTER_PIDS[@]}") pid i
	CLUSTER_PIDS=()
	((${#pids[@]} > 0)) || return 0
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "cluster member (pid $pid) did not stop within 15s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
}

# launch_cluster NAME TAG starts the three members of NAME's cluster on
# new ports and data dirs and sets ENDPOINT to their client endpoints.
launch_cluster() {
	local name=$1 tag=$2 bin=$BENCH_ETCD i peers=() initial="" eps=""
	[[ $name == sett ]] && bin=$BENCH_SETT
	CLUSTER_CPORTS=() CLUSTER_LOGS=() CLUSTER_DATA=()
	for ((i = 1; i <= CLUSTER_SIZE; i++)); do
		free_port; CLUSTER_CPORTS+=("$PORT")
		free_port; peers+=("$PORT")
		initial+="${initial:+,}m$i=http://127.0.0.1:$PORT"
		eps+="${eps:+,}127.0.0.1:${CLUSTER_CPORTS[-1]}"
	done
	for ((i = 1; i <= CLUSTER_SIZE; i++)); do
		local data=$WORK/$name-$tag-m$i.data cport=${CLUSTER_CPORTS[i - 1]} pport=${peers[i - 1]}
		CLUSTER_DATA+=("$data")
		CLUSTER_LOGS+=("$WORK/$name-$tag-m$i.log")
		rm -rf "$data"
		mkdir -p "$data"
		chmod 700 "$data"
		"$bin" \
			--name="m$i" \
			--data-dir="$data" \
			--listen-client-urls="http://127.0.0.1:$cport" \
			--advertise-client-urls="http://127.0.0.1:$cport" \
			--listen-peer-urls="http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls="http://127.0.0.1:$pport" \
			--initial-cluster="$initial" \
			--initial-cluster-state=new \
			--initial-cluster-token="bench-$name-$tag" \
			--log-level="$LOG_LEVEL" \
			>>"${CLUSTER_LOGS[-1]}" 2>&1 &
		CLUSTER_PIDS+=($!)
	done
	SERVER_NAME="$name (3 members)"
	SERVER_LOG=${CLUSTER_LOGS[0]} # what a failed benchmark shows
	ENDPOINT=$eps
}

# wait_cluster_ready waits until every member serves a linearizable read
# (so a leader is elected and each member has caught up with it); it
# fails if a member exits first and dies if the cluster is not ready
# within 60s.
wait_cluster_ready() {
	local deadline=$((SECONDS + 60)) i ready
	while ((SECONDS < deadline)); do
		ready=1
		for ((i = 0; i < CLUSTER_SIZE; i++)); do
			kill -0 "${CLUSTER_PIDS[i]}" 2>/dev/null || return 1
			if ! (exec 3<>"/dev/tcp/127.0.0.1/${CLUSTER_CPORTS[i]}") 2>/dev/null ||
				! ready_probe "127.0.0.1:${CLUSTER_CPORTS[i]}"; then
				ready=0
				break
			fi
		done
		((ready)) && return 0
		sleep 0.2
	done
	for i in "${CLUSTER_LOGS[@]}"; do tail_log "$i"; done
	die "$SERVER_NAME did not become ready within 60s"
}

# start_cluster NAME TAG starts a fresh 3-member cluster and waits until
# all members serve; a member exiting during start-up (a port taken
# meanwhile) makes it try again on new ports.
start_cluster() {
	local name=$1 tag=$2 attempt l
	for attempt in 1 2 3; do
		launch_cluster "$name" "$tag"
		wait_cluster_ready && return 0
		log "a member of $SERVER_NAME exited during startup (attempt $attempt; port clash?)"
		for l in "${CLUSTER_LOGS[@]}"; do tail_log "$l"; done
		stop_cluster
	done
	die "$name failed to start as a 3-member cluster 3 times"
}

# cluster_weight is the progress weight of one run_cluster: roughly its
# seconds on 2 quiet cores (start 4, stop 2, and each figure's requests at
# the rates of its --weight below).
cluster_weight() {
	echo $((CLUSTER_PUT1_TOTAL / 600 + CLUSTER_PUT100_TOTAL / 5000 + 2 * (CLUSTER_RANGE_TOTAL / 10000) + 4 + 6))
}

label_cluster_figures() {
	label put1_3m "put, 1 client/1 conn to the leader, 3 members"
	label put100_3m "put, 100 clients/10 conns over 3 members"
	label range_s_3m "range serializable, 100 clients/10 conns over 3 members"
	label range_l_3m "range linearizable, 100 clients/10 conns over 3 members"
}

# run_cluster SERVER REPEAT: the 3-member figures of one server. The tool
# gets all three endpoints; with --target-leader it connects to the
# leader only (etcd's performance guide writes with one client to the
# leader), otherwise it spreads its connections over the members in turn.
run_cluster() {
	local server=$1 rep=$2 kv=(--key-size="$KEY_SIZE" --val-size="$VAL_SIZE")
	start_cluster "$server" "cluster-$rep"
	progress 4 "[$rep/$REPEAT] $server: 3 members serving"
	measure put1_3m "$server" "$rep" --weight=$((CLUSTER_PUT1_TOTAL / 600 + 1)) -- \
		--target-leader --clients=1 --conns=1 put "${kv[@]}" --sequential-keys \
		--key-space-size="$CLUSTER_PUT1_TOTAL" --total="$CLUSTER_PUT1_TOTAL"
	measure put100_3m "$server" "$rep" --weight=$((CLUSTER_PUT100_TOTAL / 5000 + 1)) -- \
		--clients=100 --conns=10 put "${kv[@]}" --sequential-keys \
		--key-space-size="$CLUSTER_PUT100_TOTAL" --total="$CLUSTER_PUT100_TOTAL"
	bench_tool "range key setup" "$WORK/$server-$rep-cluster-rangekey.out" \
		--clients=1 --conns=1 put --key-size=1 --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size=2 --total=2
	measure range_s_3m "$server" "$rep" --weight=$((CLUSTER_RANGE_TOTAL / 10000 + 1)) -- \
		--clients=100 --conns=10 range "$RANGE_KEY" --consistency=s --total="$CLUSTER_RANGE_TOTAL"
	measure range_l_3m "$server" "$rep" --weight=$((CLUSTER_RANGE_TOTAL / 10000 + 1)) -- \
		--clients=100 --conns=10 range "$RANGE_KEY" --consistency=l --total="$CLUSTER_RANGE_TOTAL"
	stop_cluster
	rm -rf "${CLUSTER_DATA[@]}"
	progress 2 "[$rep/$REPEAT] $server: 3 members stopped"
}
