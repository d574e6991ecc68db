"""Generate a synthetic binary-classification data set (CSV) with a fixed seed.

Two Gaussian blobs in `--features` dimensions; the label is which blob a row
came from. Standard library only.
"""
import argparse
import csv
import os
import random

p = argparse.ArgumentParser()
p.add_argument("--rows", type=int, default=2000)
p.add_argument("--features", type=int, default=4)
p.add_argument("--seed", type=int, default=7)
p.add_argument("--out", required=True)
a = p.parse_args()

rng = random.Random(a.seed)
centers = [[rng.uniform(-1, 1) for _ in range(a.features)] for _ in range(2)]
os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
tmp = a.out + ".tmp"
with open(tmp, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow([f"x{i}" for i in range(a.features)] + ["y"])
    for _ in range(a.rows):
        y = rng.random() < 0.5
        c = centers[int(y)]
        w.writerow([round(rng.gauss(c[i], 0.8), 5) for i in range(a.features)] + [int(y)])
os.replace(tmp, a.out)  # readers never see a half-written file
print(f"wrote {a.rows} rows x {a.features} features to {a.out}")
