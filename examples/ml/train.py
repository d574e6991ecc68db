"""Train a logistic regression with batch gradient descent (standard library).

Splits the data 80/20 (deterministically), trains on the first part and
writes the weights as JSON. Prints the loss as it goes.
"""
import argparse
import csv
import json
import math
import os

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--model", required=True)
p.add_argument("--lr", type=float, default=0.5)
p.add_argument("--epochs", type=int, default=50)
a = p.parse_args()

with open(a.data) as f:
    rows = list(csv.reader(f))[1:]
xs = [[float(v) for v in r[:-1]] for r in rows]
ys = [int(r[-1]) for r in rows]
n_train = int(len(xs) * 0.8)
xs, ys = xs[:n_train], ys[:n_train]
d = len(xs[0])
w = [0.0] * (d + 1)  # last weight is the bias


def predict(x):
    z = sum(wi * xi for wi, xi in zip(w, x)) + w[-1]
    return 1.0 / (1.0 + math.exp(-max(min(z, 30), -30)))


for epoch in range(1, a.epochs + 1):
    grad = [0.0] * (d + 1)
    loss = 0.0
    for x, y in zip(xs, ys):
        p_ = predict(x)
        loss -= y * math.log(p_ + 1e-12) + (1 - y) * math.log(1 - p_ + 1e-12)
        for i in range(d):
            grad[i] += (p_ - y) * x[i]
        grad[-1] += p_ - y
    w = [wi - a.lr * g / len(xs) for wi, g in zip(w, grad)]
    if epoch % 10 == 0 or epoch == 1:
        print(f"epoch {epoch:3d}  loss {loss / len(xs):.4f}", flush=True)

os.makedirs(os.path.dirname(a.model) or ".", exist_ok=True)
with open(a.model + ".tmp", "w") as f:
    json.dump({"weights": w, "epochs": a.epochs, "lr": a.lr}, f)
os.replace(a.model + ".tmp", a.model)
print(f"model written to {a.model}")
