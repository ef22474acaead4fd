#!/usr/bin/env bash
# CNN Lab for a class, on one machine: a Ray head node that runs the trainings, R Streamlit
# replicas (each a native Ray driver) and HAProxy in front of them with cookie stickiness.
# See docs/deploy-classroom.md.
#
#   deploy/classroom.sh                                   # 2 replicas on http://127.0.0.1:8080
#   REPLICAS=4 TRAINING_SLOTS=8 CNNLAB_PROXY_BIND=0.0.0.0:8080 deploy/classroom.sh
#
# Settings (environment variables, with their defaults):
#   REPLICAS=2                 Streamlit processes, on 127.0.0.1:FIRST_PORT, FIRST_PORT+1, ...
#   FIRST_PORT=8501
#   CNNLAB_PROXY_BIND=127.0.0.1:8080   where HAProxy listens (the address students open)
#   TRAINING_SLOTS=<CPUs / CNNLAB_RAY_CPUS_PER_TRAINING>   trainings this machine runs at once
#   RAY_PORT=6379              the head's port; Ray listens on every interface: a firewall must
#                              keep its ports off the internet (docs/deploy-classroom.md)
#   CNNLAB_RAY_ADDRESS         already set: no head is started; the replicas join that cluster
#                              (this machine must then be a node of it: ray start --address=...)
#   CNNLAB_MAX_TRAININGS       trainings in flight per replica (default: TRAINING_SLOTS / REPLICAS,
#                              rounded up); every other CNNLAB_* variable reaches the replicas
#   RUN_DIR=<a new temporary folder>   logs (ray.log, replica-N.log, haproxy.log), haproxy.cfg,
#                              and ray_auth_token (RAY_AUTH_MODE=token, the cluster's secret)
#   RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH   an existing cluster's token (see Ray's token auth)
#   PYTHON=python3             the interpreter with requirements-ray.txt installed
#
# Stops everything it started on Ctrl-C or SIGTERM, or as soon as one part exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
REPLICAS=${REPLICAS:-2}
FIRST_PORT=${FIRST_PORT:-8501}
RAY_PORT=${RAY_PORT:-6379}
RUN_DIR=${RUN_DIR:-$(mktemp -d -t cnnlab-classroom-XXXXXX)}
export CNNLAB_PROXY_BIND=${CNNLAB_PROXY_BIND:-127.0.0.1:8080}
export RAY_USAGE_STATS_ENABLED=0
mkdir -p "$RUN_DIR"

if [ "${CNNLAB_RAY_ADDRESS:-}" = local ] && [ "$REPLICAS" -gt 1 ]; then
    echo "classroom: CNNLAB_RAY_ADDRESS=local gives each replica a cluster of its own; unset it" \
        "(a head is started here) or name a cluster's address." >&2
    exit 2
fi

CPUS_PER_TRAINING=${CNNLAB_RAY_CPUS_PER_TRAINING:-1}
if [ -z "${TRAINING_SLOTS:-}" ]; then
    TRAINING_SLOTS=$("$PYTHON" -c "import os, math; print(max(1, math.floor(os.cpu_count() / float('$CPUS_PER_TRAINING'))))")
fi
export CNNLAB_MAX_TRAININGS=${CNNLAB_MAX_TRAININGS:-$(( (TRAINING_SLOTS + REPLICAS - 1) / REPLICAS ))}

# Token authentication (Ray's own, on by default for a head it starts here): the head and every
# replica use the same secret token, in RUN_DIR unless RAY_AUTH_TOKEN(_PATH) names one.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ]; then
    export RAY_AUTH_TOKEN_PATH="$RUN_DIR/ray_auth_token"
    (umask 077 && "$PYTHON" -c "import secrets; print(secrets.token_hex(32), end='')" >"$RAY_AUTH_TOKEN_PATH")
fi

PIDS=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "classroom: stopped (logs in $RUN_DIR)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# 1. The Ray head: the trainings' resources (CNN Lab's actors ask for one cnnlab_training each),
#    no dashboard, no usage statistics. The replicas' code must import on the workers: the same
#    checkout, on PYTHONPATH. A raylet whose agents take more than 15 s to start (a machine
#    busy with other work) dies at start (ray-project/ray#65983): the start is tried 3 times.
if [ -z "${CNNLAB_RAY_ADDRESS:-}" ]; then
    for attempt in 1 2 3; do
        PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m ray.scripts.scripts start --head \
            --block --node-ip-address 127.0.0.1 --port "$RAY_PORT" \
            --resources "{\"cnnlab_training\": $TRAINING_SLOTS}" \
            --include-dashboard false --disable-usage-stats >"$RUN_DIR/ray.log" 2>&1 &
        head=$!
        until grep -q "Ray runtime started" "$RUN_DIR/ray.log" || ! kill -0 "$head" 2>/dev/null; do
            sleep 0.2
        done
        grep -q "Ray runtime started" "$RUN_DIR/ray.log" && break
        wait "$head" || true
        mv "$RUN_DIR/ray.log" "$RUN_DIR/ray-failed-$attempt.log"
        echo "classroom: the Ray head did not start (try $attempt of 3):" \
            "$(tail -n 1 "$RUN_DIR/ray-failed-$attempt.log")" >&2
        [ "$attempt" -lt 3 ] || exit 1
    done
    PIDS+=("$head")
    export CNNLAB_RAY_ADDRESS=127.0.0.1:$RAY_PORT
fi

# 2. The replicas: plain `streamlit run app.py`, each on its own port, reachable only locally.
for i in $(seq 1 "$REPLICAS"); do
    port=$((FIRST_PORT + i - 1))
    "$PYTHON" -m streamlit run app.py --server.port "$port" --server.address 127.0.0.1 \
        --server.headless true --browser.gatherUsageStats false \
        >"$RUN_DIR/replica-$i.log" 2>&1 &
    PIDS+=($!)
done

# 3. HAProxy, with one server line per replica (deploy/haproxy.cfg lists two).
grep -v '^    server r[0-9]' deploy/haproxy.cfg >"$RUN_DIR/haproxy.cfg"
for i in $(seq 1 "$REPLICAS"); do
    echo "    server r$i 127.0.0.1:$((FIRST_PORT + i - 1)) cookie r$i" >>"$RUN_DIR/haproxy.cfg"
done
haproxy -c -q -f "$RUN_DIR/haproxy.cfg"
haproxy -db -f "$RUN_DIR/haproxy.cfg" >"$RUN_DIR/haproxy.log" 2>&1 &
PIDS+=($!)

echo "classroom: http://$CNNLAB_PROXY_BIND ($REPLICAS replicas, Ray at $CNNLAB_RAY_ADDRESS," \
    "$TRAINING_SLOTS training slots, $CNNLAB_MAX_TRAININGS per replica; logs in $RUN_DIR)"
wait -n "${PIDS[@]}"
echo "classroom: a part exited; stopping the rest" >&2
exit 1
