"""The console's shell in a real browser: drover-web serves it at / with a
Content-Security-Policy, a token logs in (a wrong one is refused in the
page), the role shows, logging out forgets the token, and a page that
needs a token sends the user to the login and back."""
import os
import sys
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import console  # noqa: E402


class ConsoleShellTest(console.ConsoleTestCase):

    def test_served_with_a_strict_policy(self):
        with urllib.request.urlopen(self.c.web_url + "/") as r:
            csp = r.headers.get("Content-Security-Policy", "")
            body = r.read().decode()
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertNotIn("<script>", body, "no inline script in index.html")
        self.assertNotIn("http://", body.replace("http://www.w3.org", ""))
        self.assertNotIn("https://", body, "nothing from another origin")

    def test_login_logout_and_return(self):
        b = self.browser
        b.open("/agents")
        b.wait_css("#token")  # sent to the login first
        b.css("#token").send_keys("drva1.nope.nope")
        b.css("#login-submit").click()
        err = b.wait_css("#login-error")
        b.wait(lambda: err.text, what="an error for a wrong token")
        self.assertIn("token", err.text.lower())
        b.css("#token").clear()
        b.css("#token").send_keys(self.token)
        b.css("#login-submit").click()
        b.wait_css("#logout")
        self.assertIn("admin", b.css("#who").text)
        b.wait(lambda: b.js("return location.hash") == "#/agents", what="back to #/agents")
        b.css("#logout").click()
        b.wait_css("#token")
        self.assertEqual(b.js("return sessionStorage.getItem('drover.token')"), None)
        self.assertEqual(b.severe_errors(), [])


if __name__ == "__main__":
    console.main()
