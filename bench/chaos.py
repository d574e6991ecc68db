#!/usr/bin/env python3
"""chaos — the long chaos run of `make bench` (issue 12): a 1,000-step run
while droverd and two agents are killed with SIGKILL at random moments,
alone and both at once, and restarted. The checks are those of
tests/integration/chaos.py (the short run in `make test` uses the same
code); this writes the counts to bench/results/chaos.json and prints them.

    python3 bench/chaos.py [--bin-dir build] [--steps 1000] [--kills 40] [--seed N]
"""
import argparse
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", default=os.path.join(SOURCE_DIR, "build"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "chaos.json"))
    args = ap.parse_args()
    os.environ["DROVER_BIN_DIR"] = os.path.abspath(args.bin_dir)
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
    import harness  # noqa: E402 - needs DROVER_BIN_DIR first
    from chaos import run_chaos  # noqa: E402

    results = {}

    class ChaosBench(harness.DroverTestCase):
        def test_long_chaos_run(self):
            results.update(run_chaos(self.c, self, steps=args.steps, seed=args.seed,
                                     max_kills=args.kills, timeout=1800))

    r = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(ChaosBench))
    results.update(steps_asked=args.steps, seed=args.seed, passed=r.wasSuccessful())
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print("chaos: %s" % json.dumps(results))
    return 0 if r.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
