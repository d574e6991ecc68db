#!/usr/bin/python3
"""Regenerate the web console's screenshots in docs/img/ (README "Web
console"): real daemons (tests/integration/harness.py: droverd, a spot and
an on-demand agent, drover-web serving BUILD/web) and Debian's headless
chromium (tests/browser/console.py), on
  - the demo pipeline (examples/ml) run to the end, its evaluate step's
    panel open: docs/img/console-run.png
  - a pipeline whose step fails, the failed step's panel open:
    docs/img/console-failed-step.png
  - the agents page: docs/img/console-agents.png
Usage: /usr/bin/python3 scripts/console-screenshots.py [BUILD_DIR] (default
build; python3-selenium, chromium and chromium-driver installed). The
daemons and their temp dir are removed at the end (DROVER_TEST_KEEP=1
keeps the dir)."""
import json
import os
import shutil
import sys
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if len(sys.argv) > 1:
    os.environ["DROVER_BIN_DIR"] = os.path.abspath(sys.argv[1])
os.environ.setdefault("DROVER_BIN_DIR", os.path.join(ROOT, "build"))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tests", "browser"))

import console  # noqa: E402
from console import harness  # noqa: E402

OUT = os.path.join(ROOT, "docs", "img")
ML = os.path.join(ROOT, "examples", "ml")

BUSY = """
name: tune-sweep
steps:
  - name: trial-a
    resources: {cpu: 2}
    script: sleep 120
  - name: trial-b
    resources: {cpu: 2}
    script: sleep 120
"""

FAILING = """
name: nightly-etl
params: {table: events, day: "2026-12-07"}
steps:
  - name: extract
    env: {TABLE: "{{params.table}}"}
    script: for i in 1 2 3; do echo "extract $TABLE part $i"; sleep 0.2; done
  - name: validate
    needs: [extract]
    env: {DAY: "{{params.day}}"}
    script: |
      echo "checking rows of $DAY"
      echo "found 17 rows with a null user_id" >&2
      exit 4
  - name: load
    needs: [validate]
    script: echo load
  - name: report
    needs: [extract]
    script: echo "3 parts extracted"
"""


def api(c, token, method, path, body=None):
    req = urllib.request.Request(c.web_url + "/api/v1" + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


def final(c, token, rid):
    harness.wait_until(lambda: api(c, token, "GET", "/runs/" + rid)["status"] in
                       ("succeeded", "failed", "cancelled"), timeout=180,
                       what="run %s to end" % rid)


def shoot(b, hash_path, ready_css, path):
    b.go(hash_path)
    b.wait_css(ready_css)
    b.wait(lambda: b.js("return document.querySelector('#step-log') === null || "
                        "document.querySelector('#step-log').dataset.state !== 'following'"),
           what="the log to end")
    b.js("window.scrollTo(0, 0)")
    b.screenshot(path)
    print("wrote", os.path.relpath(path, ROOT))


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="drover-shots-", dir="/tmp")
    c = harness.Cluster(tmp)
    b = None
    try:
        # a pool, so the agents page shows one (its provider fails: back-off)
        c.start_droverd(extra=["--pools", json.dumps([{
            "name": "gpu-spot", "node": {"cpu": 8, "memory": "16Gi", "gpus": 1,
                                         "labels": {"pool": "gpu-spot"}},
            "min": 0, "max": 4, "spot": True, "price": 0.9, "idle": "60s",
            "provider": {"command": "/bin/false"}}])])
        c.start_agent("spot-1", cpus=4, extra=["--spot", "true", "--price", "0.35"])
        c.start_agent("ondemand-1", cpus=4, extra=["--spot", "false", "--price", "1.10"])
        c.start_web()
        token = console.make_token(c, "alice", "admin")
        with open(os.path.join(ML, "pipeline.yaml")) as f:
            ml = api(c, token, "POST", "/runs", {"spec": f.read(), "file": "pipeline.yaml",
                                                 "params": {"src": ML}})["run_id"]
        bad = api(c, token, "POST", "/runs", {"spec": FAILING, "file": "etl.yaml"})["run_id"]
        final(c, token, ml)
        final(c, token, bad)
        downloads = os.path.join(tmp, "downloads")
        os.makedirs(downloads)
        b = console.Browser(c.web_url, downloads, width=1500, height=900)
        b.login(token)
        shoot(b, "/runs/%s?step=evaluate" % ml, '#step-panel[data-task="evaluate"] #step-params',
              os.path.join(OUT, "console-run.png"))
        shoot(b, "/runs/%s?step=validate" % bad, "#step-exit-code",
              os.path.join(OUT, "console-failed-step.png"))
        # busy agents for the agents page: two steps running, one agent draining
        busy = api(c, token, "POST", "/runs", {"spec": BUSY, "file": "busy.yaml"})["run_id"]
        harness.wait_until(lambda: sum(a.get("running", 0) for a in
                                       api(c, token, "GET", "/agents")["agents"]) == 2,
                           timeout=60, what="two steps running")
        api(c, token, "POST", "/agents/ondemand-1/drain", {})
        b.go("/agents")
        b.wait(lambda: b.js("return document.querySelector('#page').textContent.length > 0"),
               what="the agents page")
        b.wait(lambda: b.all("#agents tr.agent") or b.all("#page .empty"), what="agents shown")
        b.screenshot(os.path.join(OUT, "console-agents.png"))
        print("wrote", os.path.relpath(os.path.join(OUT, "console-agents.png"), ROOT))
        api(c, token, "POST", "/runs/%s/cancel" % busy, {})
    finally:
        if b:
            b.quit()
        problems = c.stop()
        if problems:
            print("problems:", "; ".join(problems), file=sys.stderr)
        if os.environ.get("DROVER_TEST_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


if __name__ == "__main__":
    main()
