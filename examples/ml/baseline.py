"""Majority-class baseline: the accuracy a model must beat to be useful."""
import argparse
import csv

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--out", required=True, help="file to write the accuracy to (an output param)")
a = p.parse_args()

with open(a.data) as f:
    ys = [int(r[-1]) for r in list(csv.reader(f))[1:]]
test = ys[int(len(ys) * 0.8):]
majority = round(sum(ys[: int(len(ys) * 0.8)]) / max(1, int(len(ys) * 0.8)))
acc = sum(1 for y in test if y == majority) / len(test)
with open(a.out, "w") as f:
    f.write(f"{acc:.4f}\n")
print(f"baseline accuracy {acc:.3f}")
