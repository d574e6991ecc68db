"""drover.main(pipeline): a command line for a pipeline script, like
Kubeflow's create_run_from_pipeline_func.

    python3 train_pipeline.py                 # print the YAML (same as --print)
    python3 train_pipeline.py --submit -p rows=500 --wait
    python3 train_pipeline.py --submit --url https://drover.example:7080 --token $T

--submit sends the spec to drover-web (Client.submit) and prints the run
id; --wait then follows the run to its end and prints its status (exit 0
only when it succeeded). Errors print as `drover: error: ...` (a refused
spec: one `FILE:LINE:COL: message` line each) and exit non-zero: 2 for a
usage error, 6 for a refused spec (as `drover submit`), 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from .client import Client
from .errors import DroverError, InvalidSpec


def _param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % text)
    k, v = text.split("=", 1)
    return k, v


def main(pipeline: Any, argv: Sequence[str] | None = None) -> int:
    """Run the command line for pipeline (a Pipeline, or a function
    returning one); return the exit status (and exit with it when called
    with argv None, i.e. from a script's __main__)."""
    ap = argparse.ArgumentParser(description="Print or submit the pipeline %s."
                                 % getattr(pipeline, "name", ""))
    ap.add_argument("--print", action="store_true", help="print the spec as YAML (default)")
    ap.add_argument("-o", "--output", metavar="FILE", help="write the spec to FILE")
    ap.add_argument("--submit", action="store_true", help="submit it to drover-web")
    ap.add_argument("--url", help="drover-web's URL (default $DROVER_URL or http://127.0.0.1:7080)")
    ap.add_argument("--token", help="API token (default $DROVER_TOKEN)")
    ap.add_argument("-p", "--param", action="append", type=_param, default=[],
                    metavar="KEY=VALUE", help="override a param (repeatable)")
    ap.add_argument("--no-cache", action="store_true", help="run every step (no CACHED)")
    ap.add_argument("--wait", action="store_true", help="with --submit: wait for the end")
    ap.add_argument("--timeout", type=float, help="with --wait: give up after SECONDS")
    args = ap.parse_args(argv)
    p = pipeline() if callable(pipeline) and not hasattr(pipeline, "to_yaml") \
        else pipeline
    code = 0
    try:
        if args.output:
            p.save(args.output)
        if args.print or not (args.submit or args.output):
            sys.stdout.write(p.to_yaml())
        if args.submit:
            c = Client(args.url, args.token)
            rid = c.submit(p, params=dict(args.param), no_cache=args.no_cache)
            print(rid, flush=True)
            if args.wait:
                run = c.wait(rid, timeout=args.timeout)
                print("run %s %s" % (rid, run.get("status")), flush=True)
                code = 0 if run.get("status") == "succeeded" else 1
    except InvalidSpec as e:
        for problem in e.errors:
            print("drover: error: %s" % problem, file=sys.stderr)
        code = 6
    except (DroverError, TimeoutError, OSError) as e:
        print("drover: error: %s" % e, file=sys.stderr)
        code = 1
    if argv is None:
        sys.exit(code)
    return code
