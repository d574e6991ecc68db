"""Unit tests of drover's YAML emitter (python/drover/yamlemit.py): the text
for the cases a spec writer meets, and, with PyYAML when installed, that
every emitted document reads back as the value given (YAML 1.1 rules, the
strictest about bools and numbers)."""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from drover.yamlemit import Block, dump, scalar  # noqa: E402

try:
    import yaml  # python3-yaml: only to check what a real reader sees
except ImportError:  # pragma: no cover
    yaml = None


class ScalarText(unittest.TestCase):
    def test_plain_when_safe(self):
        for s in ("train", "1s", "256Mi", "/usr/share/drover", "a b c", "--rows", "-x",
                  "generate.dataset", "echo \"$X\" | tee out", "printf '%s' x", "a,b", "é"):
            self.assertEqual(scalar(s), s, s)

    def test_quoted_when_a_reader_would_see_another_type(self):
        for s in ("1", "0.5", "-3", "+1", "1e3", "1_000", "0x1F", "0o17", "1:30", ".5", ".inf",
                  "yes", "No", "ON", "off", "true", "False", "null", "~", "", "y", "N"):
            self.assertIn(scalar(s)[0], "\"'", s)

    def test_quoted_for_indicators_comments_and_templates(self):
        cases = {
            "{{params.x}}": '"{{params.x}}"',
            "{{a}} == b": '"{{a}} == b"',
            "echo {{item}}": '"echo {{item}}"',
            "key: value": '"key: value"',
            "a #b": '"a #b"',
            "#x": '"#x"',
            "- x": '"- x"',
            "-": '"-"',
            "ends:": '"ends:"',
            " lead": '" lead"',
            "trail ": '"trail "',
            "*alias": '"*alias"',
            "&anchor": '"&anchor"',
            "!tag": '"!tag"',
            "%d": '"%d"',
            "@x": '"@x"',
            "`x": '"`x"',
            "|": '"|"',
            '["0.05", "0.2"]': '\'["0.05", "0.2"]\'',
            " a\\b": "' a\\b'",
            "'q' x": '"\'q\' x"',
            "tab\there": '"tab\\there"',
            "bell\x07": '"bell\\x07"',
            "nul\x00": '"nul\\0"',
            "---": '"---"',
        }
        for s, want in cases.items():
            self.assertEqual(scalar(s), want, s)

    def test_flow_context_quotes_flow_indicators(self):
        self.assertEqual(scalar("a,b", flow=True), '"a,b"')
        self.assertEqual(scalar("x]", flow=True), '"x]"')
        self.assertEqual(scalar("http://h:1", flow=True), '"http://h:1"')
        self.assertEqual(scalar("--rows", flow=True), "--rows")

    def test_non_strings(self):
        self.assertEqual([scalar(v) for v in (None, True, False, 3, -2, 1.5)],
                         ["null", "true", "false", "3", "-2", "1.5"])


class Documents(unittest.TestCase):
    def test_layout_like_a_person_writes(self):
        doc = Block(name="p", params=Block(rows="4000"), steps=[
            Block(name="a", needs=["b"], resources={"cpu": 1, "memory": "1Gi"},
                  script="echo 1\necho 2\n"),
        ])
        self.assertEqual(dump(doc), (
            "name: p\n"
            "params:\n"
            "  rows: \"4000\"\n"
            "steps:\n"
            "  - name: a\n"
            "    needs: [b]\n"
            "    resources: {cpu: 1, memory: 1Gi}\n"
            "    script: |\n"
            "      echo 1\n"
            "      echo 2\n"))

    def test_block_scalar_chomping_and_indent(self):
        self.assertEqual(dump({"a": {"s": "x\ny"}}), "a:\n  s: |-\n    x\n    y\n")
        self.assertEqual(dump({"a": {"s": "x\n\n"}}), "a:\n  s: |+\n    x\n\n")
        self.assertEqual(dump({"a": {"s": "  x\ny\n"}}), "a:\n  s: |2\n      x\n    y\n")

    def test_long_flow_falls_back_to_block(self):
        env = {"K%d" % i: "value-%d" % i for i in range(12)}
        text = dump({"steps": [{"name": "a", "env": env}]})
        self.assertIn("    env:\n      K0: value-0\n", text)
        self.assertTrue(all(len(line) <= 100 for line in text.splitlines()))

    def test_empty_containers(self):
        self.assertEqual(dump({"a": {}, "b": []}), "a: {}\nb: []\n")


@unittest.skipIf(yaml is None, "python3-yaml not installed")
class RoundTrip(unittest.TestCase):
    ALPHABET = (list("abcxyz019 .:-#,[]{}'\"\\|>!&*%@`?~=\t\n\r") +
                ["\x00", "\x07", "\x7f", "\x85", "\u00e9", "\u2028", "\ufeff", "\U0001F600",
                 "{{", "}}", ": ", " #", "yes", "null", "1e3", "0x", "---", "..."])

    def check(self, doc):
        text = dump(doc)
        back = yaml.safe_load(text)
        self.assertEqual(back, doc, "emitted:\n" + text)

    def test_random_strings_read_back_exactly(self):
        rng = random.Random(19)
        for _ in range(1500):
            s = "".join(rng.choice(self.ALPHABET) for _ in range(rng.randint(0, 8)))
            # at every depth: block mapping value, flow mapping/list value, list item
            self.check({"k": s, "steps": [{"name": "n", "env": {"E": s}, "cmd": [s, "x"],
                                           "script": s}]})
            self.check({s: 1} if s else {"": 1})

    def test_numbers_bools_null(self):
        self.check({"a": [1, -2, 1.5, True, False, None, "1", "true", "null", ""]})


if __name__ == "__main__":
    unittest.main()
