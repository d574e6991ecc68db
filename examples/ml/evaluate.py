"""Evaluate the trained model on the held-out 20% and compare to the baseline.

Exits non-zero if the model does not beat the baseline, which fails the run.
"""
import argparse
import csv
import json
import math
import sys

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--model", required=True)
p.add_argument("--baseline", required=True)
a = p.parse_args()

with open(a.data) as f:
    rows = list(csv.reader(f))[1:]
test = rows[int(len(rows) * 0.8):]
w = json.load(open(a.model))["weights"]
base = json.load(open(a.baseline))["accuracy"]
correct = 0
for r in test:
    x = [float(v) for v in r[:-1]]
    z = sum(wi * xi for wi, xi in zip(w, x)) + w[-1]
    correct += int((1 / (1 + math.exp(-max(min(z, 30), -30))) >= 0.5) == int(r[-1]))
acc = correct / len(test)
print(f"model accuracy {acc:.3f} on {len(test)} held-out rows (baseline {base:.3f})")
sys.exit(0 if acc > base else 1)
