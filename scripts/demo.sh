#!/bin/sh
# make demo: a local droverd and two agents on an embedded state dir
# (.demo/), then the example ML pipeline (examples/ml) run to the end,
# then a training step on the spot agent (examples/spot) preempted midway
# by a drill and resumed on the on-demand agent from its checkpoint, then
# a burst of steps (examples/pools) for which an autoscaling node pool
# grows from no node to three and shrinks back once they are done, then
# the HTTP API (drover-web): the same ML pipeline written in Python
# (examples/python) submitted and followed with an API token, and the
# Prometheus metrics; last, the web console: its URL and an admin token to
# log in with.
# Daemon logs are in .demo/*.log. When the demo succeeds, droverd, its two
# agents and drover-web keep running for the console (their pids in
# .demo/daemons.pid; the demo prints how to stop them, and the next demo
# stops them first); when it fails, everything stops.
# CONTAINERS=1 runs every step in an OCI container (runc) whose image is
# this machine's own root filesystem, mounted read-only.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${1:-build}
demo=$root/.demo
# a previous demo's daemons (left running for its console): stopped, if
# they are still this checkout's programs
stale=""
if [ -f "$demo/daemons.pid" ]; then
    for pid in $(cat "$demo/daemons.pid"); do
        case $(readlink "/proc/$pid/exe" 2>/dev/null) in
        "$bin"/drover*) kill "$pid" 2>/dev/null && stale="$stale $pid" ;;
        esac
    done
    for pid in $stale; do
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
fi
rm -rf "$demo"
mkdir -p "$demo"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DROVER_API="ipc://$demo/state/api.sock"
drover() { "$bin/drover" "$@"; }
runtime=process
image=""
if [ "${CONTAINERS:-0}" = 1 ]; then
    runtime=oci
    image=/
fi

# The pool "burst": 2-cpu nodes made by the local provider (agents on this
# machine, in $demo/pool), from none up to 3, removed after 3 s idle.
pools='[{"name": "burst", "node": {"cpu": 2, "memory": "1Gi", "labels": {"pool": "burst"}},
  "price": 0.12, "min": 0, "max": 3, "idle": "3s", "boot-timeout": "60s",
  "provider": {"command": "'$root'/providers/local",
    "args": ["--state-dir", "'$demo'/pool", "--agent", "'$bin'/drover-agent", "--",
             "--heartbeat", "500ms", "--runtime", "'$runtime'"]}}]'
"$bin/droverd" --state-dir "$demo/state" --listen "tcp://127.0.0.1:$port" --pools "$pools" \
    </dev/null >"$demo/droverd.log" 2>&1 &
pids=$!
# agent-1 plays a spot node, agent-2 an on-demand one (prices per hour)
for i in 1 2; do
    if [ $i = 1 ]; then capacity="--spot true --price 0.35"; else capacity="--spot false --price 1.10"; fi
    # shellcheck disable=SC2086
    "$bin/drover-agent" --scheduler "tcp://127.0.0.1:$port" --work-dir "$demo/agent-$i" \
        --name "agent-$i" --cpus 2 --memory 2Gi --labels "node=local-$i" $capacity \
        --runtime "$runtime" </dev/null >"$demo/agent-$i.log" 2>&1 &
    pids="$pids $!"
done
# The pool's agents run in their own sessions (as on their own machines):
# stopped from the provider's record.
stop_pool() {
    [ -f "$demo/pool/nodes.json" ] && python3 -c 'import json, os, signal, sys
for n in json.load(open(sys.argv[1]))["nodes"].values():
    try:
        os.killpg(n["pid"], signal.SIGKILL)
    except OSError:
        pass' "$demo/pool/nodes.json"
    return 0
}
trap 'kill $pids 2>/dev/null; stop_pool; wait 2>/dev/null' EXIT INT TERM

# wait_for CONDITION TRIES WHAT: until the shell condition holds, every
# 0.1 s, at most TRIES times; else the demo fails saying WHAT.
wait_for() {
    tries=0
    until eval "$1"; do
        tries=$((tries + 1))
        if [ $tries -gt "$2" ]; then
            echo "demo: $3; see $demo/*.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

echo "== droverd on tcp://127.0.0.1:$port, API $DROVER_API"
connected() { drover agents -o json 2>/dev/null | grep -c '"connected": true'; }
wait_for "[ \$(connected) -ge 2 ]" 100 "agents did not register"
drover agents
echo
echo "== drover submit examples/ml/pipeline.yaml --watch"
run=$(drover submit "$root/examples/ml/pipeline.yaml" -p src="$root/examples/ml" -p image="$image")
echo "$run"
status=0
drover run watch "$run" || status=$?
echo
drover run get "$run"
echo
for step in "train[0]" evaluate deploy notify; do
    echo "== drover logs $run $step"
    drover logs "$run" "$step"
done
echo "== drover artifacts $run"
drover artifacts "$run" 2>/dev/null || true
[ $status = 0 ] || exit $status

# Spot: the training step checkpoints every epoch and prefers spot nodes.
echo
echo "== drover submit examples/spot/pipeline.yaml (a training step on the spot agent)"
spot=$(drover submit "$root/examples/spot/pipeline.yaml" -p dir="$root/examples/spot" \
    -p epochs=24 -p epoch_seconds=0.25)
echo "$spot"
drover run watch "$spot" &
watcher=$!
checkpoint_step() {
    drover run get "$spot" -o json | python3 -c 'import json, sys
t = [t for t in json.load(sys.stdin)["tasks"] if t["name"] == "train"][0]
print((t["checkpoint"] or {}).get("step", 0))'
}
wait_for "[ \$(checkpoint_step) -ge 8 ]" 600 "no checkpoint from the training step"
echo
echo "== drover agent preempt agent-1 --deadline 30s  (a drill: the same path as a cloud's notice)"
drover agent preempt agent-1 --deadline 30s
wait $watcher || status=$?
echo
drover run get "$spot"
echo
echo "== drover logs $spot train --attempt 1  (on the spot agent, until the notice)"
drover logs "$spot" train --attempt 1 | tail -n 3
echo "== drover logs $spot train  (resumed on the on-demand agent)"
drover logs "$spot" train | head -n 3
[ $status = 0 ] || exit $status

# Autoscaling: nothing in the fleet has label pool=burst; the pool makes it.
echo
echo "== drover pools  (pool burst: no node yet)"
drover pools
echo
echo "== drover submit examples/pools/burst.yaml --watch  (12 one-cpu steps for pool burst)"
burst=$(drover submit "$root/examples/pools/burst.yaml")
echo "$burst"
drover run watch "$burst" || status=$?
echo
echo "== drover pools  (grown for the burst)"
drover pools
pool_nodes() {
    drover pools -o json | python3 -c 'import json, sys
print(sum(n["state"] != "removed" for p in json.load(sys.stdin) for n in p["nodes"]))'
}
wait_for "[ \$(pool_nodes) -eq 0 ]" 300 "the pool did not shrink"
echo
echo "== drover pools  (idle 3 s: every node drained and removed)"
drover pools

# The HTTP API: drover-web in front of droverd's API socket, an API token
# with role submit, and the Python client (no drover CLI from here on).
# drover-web's usual port 7080 when it is free, else any free one; the
# console's files from this build (BUILD/web).
webport=$(python3 -c 'import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as drover-web does
try:
    s.bind(("127.0.0.1", 7080))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
"$bin/drover-web" --listen "127.0.0.1:$webport" --api "$DROVER_API" --assets "$bin/web" \
    </dev/null >"$demo/drover-web.log" 2>&1 &
pids="$pids $!"
echo
echo "== drover token create demo --role submit;  drover-web on http://127.0.0.1:$webport"
DROVER_TOKEN=$(drover token create demo --role submit)
export DROVER_TOKEN DROVER_URL="http://127.0.0.1:$webport"
web_up() { python3 -c 'import os, sys, urllib.request as u
sys.exit(0 if b"\"droverd\":true" in u.urlopen(os.environ["DROVER_URL"] + "/healthz", timeout=2).read() else 1)' 2>/dev/null; }
wait_for web_up 100 "drover-web did not answer"
echo "== python3 examples/python/train_pipeline.py --submit --wait  (over HTTP, events pushed)"
python3 "$root/examples/python/train_pipeline.py" --submit --wait -p rows=500 -p epochs=5 \
    -p "src=$root/examples/ml" -p "image=$image" || status=$?
echo
echo "== GET /metrics  (a few of droverd's Prometheus metrics)"
python3 -c 'import os, urllib.request as u
r = u.Request(os.environ["DROVER_URL"] + "/metrics", headers={"Authorization": "Bearer " + os.environ["DROVER_TOKEN"]})
for line in u.urlopen(r, timeout=10).read().decode().splitlines():
    if line.startswith(("drover_runs{", "drover_dispatch_latency_seconds_count", "drover_preemptions_total")):
        print(line)'
[ $status = 0 ] || exit $status

# The web console: droverd, the agents and drover-web stay up for it.
console=$(env -u DROVER_TOKEN "$bin/drover" token create console --role admin)
echo "$pids" >"$demo/daemons.pid"
trap - EXIT INT TERM
stop_pool
echo
echo "== the web console (left running: droverd, agent-1, agent-2, drover-web)"
echo "   open  http://127.0.0.1:$webport/#/login"
echo "   token $console"
echo "   (an admin API token, made for the console: paste it on the login page)"
echo "   stop them:  kill \$(cat $demo/daemons.pid)   (the next make demo does too)"
