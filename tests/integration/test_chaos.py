"""A short chaos run (issue 12): 150 steps while droverd and two agents are
killed with SIGKILL at random, alone and together, and restarted; see
chaos.py for what is checked. bench/chaos.py runs the long one (1,000
steps) in `make bench`."""
import os

from chaos import run_chaos
from harness import DroverTestCase, main


class ChaosTest(DroverTestCase):
    def test_short_chaos_run(self):
        seed = int(os.environ.get("DROVER_CHAOS_SEED", "12"))
        counts = run_chaos(self.c, self, steps=150, seed=seed, max_kills=12, timeout=300)
        print("chaos (seed %d): %s" % (seed, counts))
        self.assertGreater(counts["droverd"] + counts["both"], 0, "droverd was never killed")
        self.assertGreater(counts["agent"] + counts["both"], 0, "no agent was killed")


if __name__ == "__main__":
    main()
