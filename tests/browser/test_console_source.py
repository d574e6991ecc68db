"""The console's sources (web/src) hold none of the ways to turn text into
markup or code (README "Web console"): DOM goes through dom.js's h()/s()
as text nodes and setAttribute, so a step's log line or output param can
never become an element; and nothing the Content-Security-Policy forbids
(inline script or style, eval), which would break the page in a browser
instead of in review. No browser and no daemons: a read of the files
(fast, in the normal build's pass with the browser tests).

Forbidden, in .js and .html: innerHTML, outerHTML, insertAdjacentHTML,
document.write, createContextualFragment, DOMParser, srcdoc, eval(),
new Function / Function(), setTimeout/setInterval with a string, a
"javascript:" URL, an inline style (style= in markup, a style attribute or
"style" key given to h(), setAttribute('style')), an on...= attribute in
markup, and in index.html a <script> without src, a <style> element or a
URL of another origin (nothing from a CDN)."""
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True
SOURCE = os.environ.get("DROVER_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
WEB_SRC = os.path.join(SOURCE, "web", "src")

FORBIDDEN_JS = [
    (r"\binnerHTML\b", "innerHTML"),
    (r"\bouterHTML\b", "outerHTML"),
    (r"\binsertAdjacentHTML\b", "insertAdjacentHTML"),
    (r"\bdocument\s*\.\s*write(ln)?\b", "document.write"),
    (r"\bcreateContextualFragment\b", "createContextualFragment"),
    (r"\bDOMParser\b", "DOMParser"),
    (r"\bsrcdoc\b", "srcdoc"),
    (r"(?<![\w.$])eval\s*\(", "eval()"),
    (r"\bnew\s+Function\b", "new Function"),
    (r"(?<![\w.$])Function\s*\(", "Function()"),
    (r"\bset(Timeout|Interval)\s*\(\s*['\"`]", "setTimeout/setInterval with a string"),
    (r"javascript:", "a javascript: URL"),
    (r"\bstyle\s*=", "an inline style (style=)"),
    (r"(?<![\w.$-])['\"]?style['\"]?\s*:", "a style attribute given to h()"),
    (r"setAttribute\s*\(\s*['\"]style['\"]", "setAttribute('style')"),
    (r"<[a-zA-Z][^>]*\son[a-z]+\s*=", "an on...= attribute in markup"),
]


def sources():
    out = []
    for d, _, files in os.walk(WEB_SRC):
        for f in files:
            if f.endswith((".js", ".mjs", ".html")):
                out.append(os.path.join(d, f))
    return sorted(out)


def strip_comments(text):
    """JavaScript without its comments (a comment may name what it avoids),
    string contents kept (a forbidden word in a string is still caught)."""
    out, i, n = [], 0, len(text)
    quote = None
    while i < n:
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
        elif ch in "'\"`":
            quote = ch
            out.append(ch)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            chunk = text[i:n if j < 0 else j + 2]
            out.append("\n" * chunk.count("\n"))  # keep line numbers
            i = n if j < 0 else j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class ConsoleSourceTest(unittest.TestCase):

    def test_sources_exist(self):
        files = [os.path.relpath(f, WEB_SRC) for f in sources()]
        for want in ("app.js", "dom.js", "api.js", "index.html"):
            self.assertIn(want, files)

    def test_no_markup_or_code_from_text(self):
        found = []
        for path in sources():
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if path.endswith((".js", ".mjs")):
                text = strip_comments(text)
            else:
                text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
            for lineno, line in enumerate(text.splitlines(), 1):
                for pattern, what in FORBIDDEN_JS:
                    if re.search(pattern, line):
                        found.append("%s:%d: %s: %s" % (os.path.relpath(path, SOURCE), lineno,
                                                        what, line.strip()[:120]))
        self.assertEqual(found, [], "web/src must build DOM only through dom.js (text nodes) and "
                         "use nothing the Content-Security-Policy forbids:\n" + "\n".join(found))

    def test_index_html(self):
        with open(os.path.join(WEB_SRC, "index.html"), encoding="utf-8") as f:
            page = re.sub(r"<!--.*?-->", "", f.read(), flags=re.S)
        for tag in re.findall(r"<script\b[^>]*>", page, flags=re.I):
            self.assertRegex(tag, r"\ssrc=", "an inline <script> in index.html: %s" % tag)
        self.assertNotRegex(page, r"(?i)<style\b", "a <style> element in index.html")
        for url in re.findall(r"""(?i)(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page):
            self.assertFalse(re.match(r"(?i)([a-z]+:)?//", url),
                             "index.html loads %s from another origin (a CDN?)" % url)

    def test_the_check_catches(self):
        # the patterns find what they are for (a test that cannot fail is none)
        bad = ["el.innerHTML = log;", "x.outerHTML=y", "e.insertAdjacentHTML('beforeend', s)",
               "document.write(s)", "eval(code)", "new Function('a', s)",
               "setTimeout('go()', 5)", "h('a', {href: 'javascript:go()'})",
               "h('div', {style: 'color: red'})", "h('div', {'style': s})",
               "el.setAttribute('style', s)", "'<div style=\"x\">'", "'<img onerror=x>'"]
        for line in bad:
            self.assertTrue(any(re.search(p, strip_comments(line)) for p, _ in FORBIDDEN_JS),
                            line)
        good = ["// never innerHTML here", "/* no eval( */ x()", "el.style.width = w + 'px'",
                "h('span', {class: 'st'}, text)", "node.textContent = s", "replace(el, text)",
                "const styleOf = (s) => s", "el.classList.add('evaluate')"]
        for line in good:
            self.assertFalse(any(re.search(p, strip_comments(line)) for p, _ in FORBIDDEN_JS),
                             line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
