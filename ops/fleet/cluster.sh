# Sourced by ops/fleet/demo.sh and bench/run-fleet.sh: start_cluster BASE DIR NODE_TIMEOUT_MS
# starts 6 Debian redis-server processes on 127.0.0.1:BASE..BASE+5 (cluster bus +10000, no
# persistence, data under DIR), appends their PIDs to the caller's array CLUSTER_PIDS,
# creates the cluster (3 primaries + 3 replicas) and waits until every node reports
# cluster_state:ok.
start_cluster() {
    local base=$1 dir=$2 timeout=$3 i port nodes=()
    for i in 0 1 2 3 4 5; do
        port=$((base + i))
        mkdir -p "$dir/redis-$port"
        redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-node-timeout "$timeout" \
            --appendonly no --save '' --dir "$dir/redis-$port" --logfile redis.log &
        CLUSTER_PIDS+=($!)
        nodes+=("127.0.0.1:$port")
    done
    for i in 0 1 2 3 4 5; do
        until redis-cli -p $((base + i)) ping >/dev/null 2>&1; do sleep 0.1; done
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log"
    for i in 0 1 2 3 4 5; do
        until redis-cli -p $((base + i)) cluster info | grep -q cluster_state:ok; do sleep 0.2; done
    done
}
