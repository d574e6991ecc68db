#!/bin/sh
# make demo: a local droverd and two agents on an embedded state dir
# (.demo/), then the example ML pipeline (examples/ml) run to the end.
# Daemon logs are in .demo/*.log; everything stops when the demo ends.
# CONTAINERS=1 runs every step in an OCI container (runc) whose image is
# this machine's own root filesystem, mounted read-only.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${1:-build}
demo=$root/.demo
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

"$bin/droverd" --state-dir "$demo/state" --listen "tcp://127.0.0.1:$port" 2>"$demo/droverd.log" &
pids=$!
for i in 1 2; do
    "$bin/drover-agent" --scheduler "tcp://127.0.0.1:$port" --work-dir "$demo/agent-$i" \
        --name "agent-$i" --cpus 2 --memory 2Gi --labels "node=local-$i" \
        --runtime "$runtime" 2>"$demo/agent-$i.log" &
    pids="$pids $!"
done
trap 'kill $pids 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

echo "== droverd on tcp://127.0.0.1:$port, API $DROVER_API"
tries=0
until [ "$(drover agents -o json 2>/dev/null | grep -c '"connected": true')" -ge 2 ]; do
    tries=$((tries + 1))
    if [ $tries -gt 100 ]; then
        echo "demo: agents did not register; see $demo/*.log" >&2
        exit 1
    fi
    sleep 0.1
done
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
exit $status
