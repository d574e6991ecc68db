#!/usr/bin/env python3
"""A training step that survives preemption (standard library only).

Linear regression by SGD on generated data. After every epoch it saves its
state to $DROVER_CHECKPOINT_DIR (written whole: temp file + rename) and
tells drover to commit it with a {"checkpoint": true} line in
$DROVER_PROGRESS, plus {"progress": f}. When drover restarts it elsewhere
after a preemption, $DROVER_RESUMED is 1 and the state is back in the
directory: training goes on from the next epoch. On SIGTERM (the
preemption signal) it finishes the epoch it is in, checkpoints, and exits.

Everything is seeded, so a run that was preempted and resumed ends with
exactly the model of one that never was.
"""
import argparse
import json
import os
import random
import signal
import sys
import time


def emit(line):
    path = os.environ.get("DROVER_PROGRESS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def save(state, step):
    ckdir = os.environ.get("DROVER_CHECKPOINT_DIR", ".")
    tmp = os.path.join(ckdir, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(ckdir, "state.json"))
    emit({"checkpoint": True, "step": step})


def load():
    path = os.path.join(os.environ.get("DROVER_CHECKPOINT_DIR", "."), "state.json")
    if os.environ.get("DROVER_RESUMED") == "1" and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epoch-seconds", type=float, default=0.0,
                    help="sleep per epoch, to stand for real work")
    ap.add_argument("--ignore-sigterm", action="store_true",
                    help="misbehave: ignore the preemption signal")
    args = ap.parse_args()

    stop = {"asked": False}
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))

    rng = random.Random(args.seed)
    dims = 5
    true_w = [rng.uniform(-2, 2) for _ in range(dims)]
    rows = []
    for _ in range(args.rows):
        x = [rng.uniform(-1, 1) for _ in range(dims)]
        y = sum(a * b for a, b in zip(true_w, x)) + rng.gauss(0, 0.1)
        rows.append((x, y))

    state = load()
    if state:
        print(f"resumed from the checkpoint of epoch {state['epoch']}", flush=True)
    else:
        state = {"epoch": 0, "w": [0.0] * dims, "b": 0.0}

    while state["epoch"] < args.epochs:
        epoch = state["epoch"] + 1
        order = list(range(len(rows)))
        random.Random(args.seed * 1000 + epoch).shuffle(order)
        w, b = state["w"], state["b"]
        loss = 0.0
        for i in order:
            x, y = rows[i]
            err = sum(a * c for a, c in zip(w, x)) + b - y
            loss += err * err
            w = [a - args.lr * err * c for a, c in zip(w, x)]
            b -= args.lr * err
        if args.epoch_seconds:
            time.sleep(args.epoch_seconds)
        state = {"epoch": epoch, "w": w, "b": b}
        save(state, epoch)
        emit({"progress": epoch / args.epochs})
        print(f"epoch {epoch}/{args.epochs} loss {loss / len(rows):.6f}", flush=True)
        if stop["asked"]:
            print(f"preempted: stopping after epoch {epoch} (checkpointed)", flush=True)
            sys.exit(143)

    out = os.environ.get("DROVER_OUTPUTS", ".")
    with open(os.path.join(out, "model"), "w") as f:
        json.dump({"w": state["w"], "b": state["b"]}, f)
    with open(os.path.join(out, "epochs"), "w") as f:
        f.write(str(state["epoch"]))


if __name__ == "__main__":
    main()
