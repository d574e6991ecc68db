"""The console's runs list, submit page and agents & pools page in a real
browser against real daemons (design20.md "The other pages"):

- submit: a spec with mistakes is refused before anything is stored and
  each mistake shows at its line and column; a spec read from a file with
  params submits and lands on its run;
- runs list: a run submitted through the API while the page is open
  appears and goes to succeeded without a reload; filters (in the hash,
  so a reload keeps them) narrow the list; pages walk older and back;
- agents: drain and undrain an agent from its row (droverd agrees), a
  preemption drill shows the agent preempting, a spot agent shows its
  class and price, goes lost live when killed and can be forgotten; a
  pool shows its min/max and a scale from the page holds it;
- a read token sees no drain, scale or submit controls and the submit
  page says why.

Two cases, each a cluster: kept few and rich for CI time."""
import json
import os
import sys
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import console  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

BAD_SPEC = (
    "name: many\n"
    "steps:\n"
    "  - name: train\n"
    "    script: echo train\n"
    "    timeout: 30\n"                # 5:14: no unit
    "  - name: eval\n"
    "    script: echo eval\n"
    "    need: [train]\n"              # 8:5: did you mean needs
)

GOOD_SPEC = (
    "name: greet\n"
    "params: {greeting: hello}\n"
    "steps:\n"
    "  - name: say\n"
    "    script: echo {{params.greeting}}\n"
)


def spec(name, script="true"):
    return "name: %s\nsteps:\n  - name: s\n    script: %s\n" % (name, json.dumps(script))


class ConsolePagesTest(console.ConsoleTestCase):
    droverd_extra = ("--pools", json.dumps([{
        "name": "gpu-spot", "node": {"cpu": 2, "memory": "1Gi", "labels": {"pool": "gpu-spot"}},
        "min": 0, "max": 3, "spot": True, "price": 0.5, "idle": "60s",
        "provider": {"command": "/bin/false"}}]),)

    def api(self, method, path, body=None, query=None, ctype=None, token=None):
        url = self.c.web_url + "/api/v1" + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None
        hd = {"Authorization": "Bearer " + (token or self.token)}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            hd["Content-Type"] = ctype or ("application/yaml" if isinstance(body, str)
                                           else "application/json")
        req = urllib.request.Request(url, data=data, method=method, headers=hd)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def submit_api(self, text):
        return self.api("POST", "/runs", text)["run_id"]

    def run_ids(self, **query):
        return [r["id"] for r in self.api("GET", "/runs", query=query)["runs"]]

    def row_ids(self):
        return [e.get_attribute("data-id") for e in self.browser.all("#runs tr.run")]

    def set_value(self, el, text):
        """What a paste does: the whole text in at once (send_keys types)."""
        self.browser.js("arguments[0].value = arguments[1];"
                        "arguments[0].dispatchEvent(new Event('input'))", el, text)

    def test_submit_and_the_live_runs_list(self):
        b = self.browser
        b.login(self.token)
        b.go("/submit")

        # A refused spec: every mistake at its line and column, nothing stored.
        self.set_value(b.wait_css("#spec"), BAD_SPEC)
        b.css("#submit-go").click()
        b.wait_css(".spec-error")
        errs = [(int(e.get_attribute("data-line")), int(e.get_attribute("data-col")), e.text)
                for e in b.all(".spec-error")]
        self.assertEqual([(ln, col) for ln, col, _ in errs], [(5, 14), (8, 5)], errs)
        self.assertTrue(errs[0][2].startswith("pipeline.yaml:5:14: "), errs)
        self.assertIn("did you mean 'needs'", errs[1][2])
        bad = [int(e.get_attribute("data-line")) for e in b.all("#spec-view .spec-line.bad")]
        self.assertEqual(bad, [5, 8])
        self.assertEqual(len(b.all("#spec-view .spec-line")), BAD_SPEC.count("\n"))
        text = b.css('#spec-view .spec-line[data-line="5"] .spec-text').get_attribute(
            "textContent")
        msg = b.css('#spec-view .spec-msg[data-line="5"] .spec-text').get_attribute("textContent")
        self.assertEqual(text, "    timeout: 30")
        self.assertEqual(msg.index("^"), 13, "the caret under column 14: %r" % msg)
        self.assertIn("30s", msg)
        self.assertEqual(self.run_ids(), [], "a refused spec was stored")
        # Clicking an error puts the cursor at its line and column.
        b.all(".spec-error")[0].click()
        self.assertEqual(b.js("return document.getElementById('spec').selectionStart"),
                         BAD_SPEC.index("30"))

        # A spec uploaded from a file, with params: it lands on its run.
        path = self.c.write_spec(GOOD_SPEC, "greet.yaml")
        b.css("#spec-file").send_keys(path)
        b.wait(lambda: b.css("#spec").get_attribute("value") == GOOD_SPEC, what="the file read")
        b.css("#params").send_keys("greeting=hi there\n\n# a comment\n")
        b.css("#submit-go").click()
        rid = b.wait(lambda: (b.js("return location.hash").partition("#/runs/")[2] or None),
                     what="the new run's page")
        run = self.api("GET", "/runs/" + rid)
        self.assertEqual(run["name"], "greet")
        self.assertEqual(run["params"].get("greeting"), "hi there")
        self.c.wait_run_final(rid)

        # The list, live: runs submitted behind the page's back appear and
        # change state without a reload (the marker would not survive one).
        b.go("/runs")
        b.wait_css('#runs tr.run[data-id="%s"][data-status="succeeded"]' % rid)
        b.js("window.__kept = 'no reload'")
        slow = self.submit_api(spec("alpha", "sleep 1"))
        b.wait_css('#runs tr.run[data-id="%s"]' % slow)
        b.wait_css('#runs tr.run[data-id="%s"][data-status="succeeded"]' % slow)
        for text in ("alpha", "console", "1/1"):  # name, owner, progress
            b.wait_text('#runs tr.run[data-id="%s"]' % slow, text)
        failed = self.submit_api(spec("beta", "exit 3"))
        b.wait_css('#runs tr.run[data-id="%s"][data-status="failed"]' % failed)
        more = [self.submit_api(spec("beta")) for _ in range(2)]
        for r in more:
            self.c.wait_run_final(r)
        b.wait(lambda: self.row_ids()[:2] == more[::-1], what="newest first")
        self.assertEqual(b.js("return window.__kept"), "no reload")
        b.wait(lambda: self.row_ids() == more[::-1] + [failed, slow, rid], what="every run")

        # Filters narrow the list, and live in the hash: a reload keeps them.
        b.css("#f-name").send_keys("beta")
        b.css("#f-apply").click()
        b.wait(lambda: self.row_ids() == more[::-1] + [failed], what="only beta's runs")
        Select(b.css("#f-status")).select_by_value("failed")
        b.wait(lambda: self.row_ids() == [failed], what="only the failed beta run")
        self.assertIn("status=failed", b.js("return location.hash"))
        b.d.refresh()
        b.wait(lambda: self.row_ids() == [failed], what="the filters after a reload")
        self.assertEqual(b.css("#f-name").get_attribute("value"), "beta")
        self.assertEqual(b.css("#f-status").get_attribute("value"), "failed")
        b.go("/runs?owner=nobody")
        b.wait_text("#runs-empty", "No runs match")

        # Pages: two runs a page, older and back.
        b.go("/runs?limit=2")
        every = self.run_ids()
        b.wait(lambda: self.row_ids() == every[:2], what="the first page")
        self.assertEqual(b.all("#runs-prev"), [])
        self.click("#runs-next")
        b.wait(lambda: self.row_ids() == every[2:4], what="the second page")
        self.click("#runs-next")
        b.wait(lambda: self.row_ids() == every[4:], what="the last page")
        self.assertEqual(b.all("#runs-next"), [])
        self.click("#runs-prev")
        b.wait(lambda: self.row_ids() == every[2:4], what="back to the second page")
        self.click("#runs-prev")
        b.wait(lambda: self.row_ids() == every[:2], what="back to the first page")
        self.assertEqual(b.severe_errors(), [])

    def click(self, sel):
        """Click sel's first match, again if a re-read replaced it meanwhile."""
        self.browser.wait(lambda: self.browser.css(sel).click() or True, what="click %s" % sel)

    def agent_row(self, name, state=None):
        sel = 'tr.agent[data-name="%s"]' % name
        if state:
            sel += '[data-state="%s"]' % state
        return self.browser.wait_css(sel)

    def test_agents_pools_and_a_read_token(self):
        b = self.browser
        b.login(self.token)
        b.go("/agents")
        self.agent_row("a1", "connected")
        b.wait_text('tr.agent[data-name="a1"]', "0 / 4")  # cpu used / offered
        b.wait_text('tr.agent[data-name="a1"]', "on-demand")

        # Drain from the page: droverd agrees, the row says so; and back.
        a1 = 'tr.agent[data-name="a1"]'
        self.click(a1 + " .agent-drain")
        self.agent_row("a1", "draining")
        self.assertTrue(self.c.agent("a1")["drained"])
        self.click(a1 + " .agent-undrain")
        self.agent_row("a1", "connected")
        self.assertFalse(self.c.agent("a1")["drained"])

        # A preemption drill with a deadline asked inline: preempting.
        self.click(a1 + " .agent-preempt")
        box = b.wait_css('tr.agent[data-name="a1"] .preempt-deadline')
        box.clear()
        box.send_keys("20")
        self.click('tr.agent[data-name="a1"] .ask-go')
        self.agent_row("a1", "preempting")
        notice = next(a for a in self.api("GET", "/agents")["agents"]
                      if a["name"] == "a1").get("preempt")
        self.assertTrue(notice, "droverd holds a notice for a1")

        # The pool: min/max and class; a scale from the page holds it.
        b.wait_text('tr.pool[data-name="gpu-spot"]', "0 / 3")  # min / max
        b.wait_text('tr.pool[data-name="gpu-spot"]', "$0.50/h")
        self.click('tr.pool[data-name="gpu-spot"] .pool-scale')
        n = b.wait_css('tr.pool[data-name="gpu-spot"] .scale-nodes')
        n.clear()
        n.send_keys("0")
        self.click('tr.pool[data-name="gpu-spot"] .ask-go')
        b.wait_text('tr.pool[data-name="gpu-spot"]', "held at 0")
        hold = self.api("GET", "/pools")["pools"][0].get("hold") or {}
        self.assertTrue(hold.get("scaled"), hold)

        # A spot agent with its price; lost when it goes, then forgotten.
        self.c.start_agent("s1", extra=("--spot", "true", "--price", "0.92"))
        b.wait_text('tr.agent[data-name="s1"][data-state="connected"]', "spot $0.92/h")
        self.c.kill_agent("s1")
        self.agent_row("s1", "lost")  # live: no reload, no click
        self.click('tr.agent[data-name="s1"] .agent-forget')
        b.wait_gone('tr.agent[data-name="s1"]')
        self.assertEqual([a["name"] for a in self.api("GET", "/agents")["agents"]], ["a1"])
        self.assertEqual(b.severe_errors(), [])

        # A read token: the same tables, no controls, and no submit.
        reader = console.make_token(self.c, "reader", role="read")
        b.css("#logout").click()
        b.wait_css("#token").send_keys(reader)
        b.css("#login-submit").click()
        b.wait_css("#logout")
        b.go("/agents")
        self.agent_row("a1")
        b.wait_css('tr.pool[data-name="gpu-spot"]')
        for sel in (".agent-drain", ".agent-undrain", ".agent-preempt", ".pool-scale",
                    ".pool-drain"):
            self.assertEqual(b.all(sel), [], sel)
        b.go("/submit")
        self.assertIn("cannot submit", b.wait_css("#submit-denied").text)
        self.assertEqual(b.all("#submit-go") + b.all("#spec"), [])
        b.go("/runs")
        b.wait_css("#runs-empty")
        self.assertEqual(b.all(".runs-new"), [])


if __name__ == "__main__":
    console.main()
