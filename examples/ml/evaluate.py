"""Evaluate every trained model on the held-out 20% and pick the best.

--models is a directory holding one sub-directory per fan-out item (0/, 1/,
...), each with weights.json. Writes two output params: best_lr, and better
("true" when the best model beats the baseline accuracy by --margin).
"""
import argparse
import csv
import json
import math
import os

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--models", required=True)
p.add_argument("--baseline", type=float, required=True)
p.add_argument("--margin", type=float, default=0.0)
p.add_argument("--outputs", required=True)
a = p.parse_args()

with open(a.data) as f:
    rows = list(csv.reader(f))[1:]
test = rows[int(len(rows) * 0.8):]


def accuracy(w):
    correct = 0
    for r in test:
        x = [float(v) for v in r[:-1]]
        z = sum(wi * xi for wi, xi in zip(w, x)) + w[-1]
        correct += int((1 / (1 + math.exp(-max(min(z, 30), -30))) >= 0.5) == int(r[-1]))
    return correct / len(test)


best = None
for item in sorted(os.listdir(a.models), key=int):
    model = json.load(open(os.path.join(a.models, item, "weights.json")))
    acc = accuracy(model["weights"])
    print(f"model {item}: lr {model['lr']:<5} accuracy {acc:.3f}")
    if best is None or acc > best[0]:
        best = (acc, model["lr"])
better = best[0] > a.baseline + a.margin
print(f"best lr {best[1]} accuracy {best[0]:.3f} vs baseline {a.baseline:.3f}: "
      f"{'deploy' if better else 'keep the current model'}")
with open(os.path.join(a.outputs, "best_lr"), "w") as f:
    f.write(str(best[1]))
with open(os.path.join(a.outputs, "better"), "w") as f:
    f.write("true" if better else "false")
