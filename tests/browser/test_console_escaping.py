"""Everything a pipeline writes shows in the console as text and never runs
as script (issue 20: "every step name, param, log line and output is
escaped"), in a real browser against real daemons.

Step and pipeline names cannot hold HTML: the spec allows letters, digits,
'_', '.' and '-' (common/spec.c valid_name; test_spec_errors covers the
refusal). What a user's pipeline CAN put in front of the console:
- a run param's value (the re-submit form's input),
- a step's output param (the panel's #step-params),
- a step's log lines (#step-log),
- a skip reason quoting the param (`when: '{{params.html}}' == 'no'` is
  false: the panel's reason);
each of them carries <script>, an <img onerror> and markup. The test opens
the runs list, the run page, each step's panel and log, and the re-submit
form: the characters show literally, window.__pwned stays undefined, no
alert opens, no element the payloads describe exists, and the page logs no
error (a Content-Security-Policy violation is one)."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import console  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402

HTML_PARAM = "<img src=x onerror=alert(1)><b id=pwn-b>bold</b><script>window.__pwned=3</script>"
LOG_LINES = ("<script>window.__pwned=1</script>",
             '<img src=x onerror="window.__pwned=2">',
             "<svg onload=alert(2)></svg><a href=javascript:alert(3) id=pwn-a>click</a>")

SPEC = """name: escaping
params:
  html: "%s"
steps:
  - name: shout
    outputs: {params: [html]}
    env: {HTML: "{{params.html}}"}
    script: |
%s
      printf '%%s' "$HTML" > "$DROVER_OUTPUTS/html"
  - name: quiet
    needs: [shout]
    when: "'{{params.html}}' == 'no'"
    script: echo never
""" % (HTML_PARAM.replace('"', '\\"'),
       "\n".join("      echo '%s'" % line for line in LOG_LINES))

# What must not exist anywhere in the page if a payload was parsed as HTML.
INJECTED = ("img[src='x'], #pwn-b, #pwn-a, script:not([src]), svg[onload], [onerror], "
            "[onload]")


class ConsoleEscapingTest(console.ConsoleTestCase):

    def setUp(self):
        super().setUp()
        self.rid = self.c.submit(SPEC)
        run = self.c.wait_run_final(self.rid, timeout=60 * console.SCALE)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        quiet = [t for t in run["tasks"] if t["name"] == "quiet"][0]
        self.assertEqual(quiet["status"], "SKIPPED", quiet)
        self.assertIn(HTML_PARAM, quiet.get("reason", ""), "the skip reason quotes the param")
        self.browser.login(self.token)

    def assertInert(self, where):
        """Nothing a payload holds ran or became an element."""
        b = self.browser
        try:
            alert = b.d.switch_to.alert
            text = alert.text
            alert.dismiss()
            self.fail("%s: an alert opened: %r" % (where, text))
        except NoAlertPresentException:
            pass
        self.assertEqual(b.js("return typeof window.__pwned"), "undefined",
                         "%s: a payload ran (window.__pwned = %r)"
                         % (where, b.js("return window.__pwned")))
        found = b.js("return Array.from(document.querySelectorAll(arguments[0]))"
                     ".map(e => e.outerHTML.slice(0, 120))", INJECTED)
        self.assertEqual(found, [], "%s: payload elements in the page" % where)
        self.assertEqual(b.severe_errors(), [], "%s: errors in the page's console" % where)

    def test_runs_list(self):
        b = self.browser
        b.go("/runs")
        row = b.wait_css('tr.run[data-id="%s"]' % self.rid)
        self.assertIn("escaping", row.text)
        self.assertInert("the runs list")

    def test_run_page_panel_log_and_resubmit(self):
        b = self.browser
        b.go("/runs/" + self.rid)
        b.wait_css('#run[data-status="succeeded"]')
        b.wait_css('#dag g.node[data-task="shout"]')
        b.wait_css('#dag g.node[data-task="quiet"][data-status="skipped"]')
        self.assertInert("the run page")

        # the skipped step's panel: its reason quotes the param, as text
        b.css('#dag g.node[data-task="quiet"]').click()
        b.wait_css('#step-panel[data-task="quiet"]')
        b.wait_text("#step-panel", HTML_PARAM)
        self.assertInert("the skipped step's panel")

        # the step that printed HTML: its log and its output param, as text
        b.go("/runs/%s?step=shout" % self.rid)
        b.wait_css('#step-panel[data-task="shout"]')
        for line in LOG_LINES:
            b.wait_text("#step-log", line)
        log = b.css("#step-log")
        self.assertEqual(log.tag_name, "pre")
        self.assertEqual(b.js("return arguments[0].children.length === 0 || "
                              "Array.from(arguments[0].querySelectorAll('*')).every("
                              "e => !['SCRIPT','IMG','SVG','A'].includes(e.tagName.toUpperCase()))",
                              log), True, "the log holds elements made from its text")
        b.wait_text("#step-params", HTML_PARAM)
        self.assertInert("the step's panel and log")

        # the re-submit form: the param's value in its input, unchanged
        b.css("#run-resubmit").click()
        inp = b.wait_css('#resubmit-form input[name="html"]')
        self.assertEqual(inp.get_attribute("value"), HTML_PARAM)
        self.assertInert("the re-submit form")


if __name__ == "__main__":
    console.main()
