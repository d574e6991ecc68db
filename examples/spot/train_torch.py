#!/usr/bin/env python3
"""A PyTorch training step that survives preemption (needs python3-torch).

The README's idiom with a real model: an MLP fit to generated data, and
after every epoch the model, the optimizer and the epoch are saved with
torch.save to last.pt.tmp and renamed over last.pt in
$DROVER_CHECKPOINT_DIR, then a {"checkpoint": true, "step": epoch} line
is appended to $DROVER_PROGRESS. drover snapshots the directory when it
reads the line (the .tmp file is never part of it), so saving faster than
an upload is fine: the newest checkpoint is committed next. Resumed
($DROVER_RESUMED=1), it loads last.pt and goes on from the next epoch. On
SIGTERM it finishes the epoch, checkpoints and exits 143.

Deterministic (seeded data and shuffles, one CPU thread): a run that was
preempted and resumed ends with exactly the weights of one that was not.
--width sets the hidden layer (about 4 * width^2 bytes of weights plus
Adam's state: --width 2500 makes last.pt about 150 MB).

Without torch it prints why and exits 0 (`make demo` uses train_sgd.py,
which needs only the standard library).
"""
import argparse
import json
import os
import signal
import sys
import time

try:
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: PyTorch is not installed ({e}); apt install python3-torch", flush=True)
    sys.exit(0)


def emit(line):
    path = os.environ.get("DROVER_PROGRESS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epoch-seconds", type=float, default=0.0,
                    help="sleep per epoch, to stand for more work")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.rows, 8, generator=gen) * 2 - 1
    y = torch.sin(x.sum(dim=1, keepdim=True))
    model = torch.nn.Sequential(torch.nn.Linear(8, args.width), torch.nn.Tanh(),
                                torch.nn.Linear(args.width, args.width), torch.nn.Tanh(),
                                torch.nn.Linear(args.width, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ck = os.environ.get("DROVER_CHECKPOINT_DIR", ".")
    last = os.path.join(ck, "last.pt")
    epoch = 0
    if os.environ.get("DROVER_RESUMED") == "1" and os.path.exists(last):
        state = torch.load(last)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        epoch = state["epoch"]
        print(f"resumed from the checkpoint of epoch {epoch}", flush=True)

    while epoch < args.epochs:
        epoch += 1
        order = torch.randperm(args.rows, generator=torch.Generator().manual_seed(
            args.seed * 1000 + epoch))
        total = 0.0
        for i in range(0, args.rows, 256):
            idx = order[i:i + 256]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if args.epoch_seconds:
            time.sleep(args.epoch_seconds)
        torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": epoch},
                   last + ".tmp")
        os.replace(last + ".tmp", last)  # whole, never half-written
        emit({"checkpoint": True, "step": epoch})
        emit({"progress": epoch / args.epochs})
        print(f"epoch {epoch}/{args.epochs} loss {total / args.rows:.6f}", flush=True)
        if stop["asked"]:
            print(f"preempted: stopping after epoch {epoch} (checkpointed)", flush=True)
            sys.exit(143)

    out = os.environ.get("DROVER_OUTPUTS", ".")
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))


if __name__ == "__main__":
    main()
