"""Spec errors, all at once (issue 15, item 8): `drover submit` of a spec
with several independent mistakes prints every one, each FILE:LINE:COL, in
file order, with did-you-mean for a mistyped key or step name, at most 20
and then "and N more errors"; exit 6 (refused), nothing stored. Through the
real droverd: the errors travel in the API's error reply, one a line."""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

EXIT_REFUSED = 6
ERR_RE = re.compile(r"^drover: error: (\S+\.yaml):(\d+):(\d+): (.*)$")


class SpecErrorsTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()

    def refused(self, text, name):
        c = self.c
        before = [r["id"] for r in c.runs()]
        r = c.cli("submit", c.write_spec(text, name))
        self.assertEqual(r.rc, EXIT_REFUSED, "a spec error exits 6: %r" % r)
        self.assertEqual(r.out, "", "a refused submit printed a run id: %r" % r)
        self.assertEqual([x["id"] for x in c.runs()], before, "a refused spec was stored")
        errors, rest = [], []
        for line in r.err.splitlines():
            m = ERR_RE.match(line)
            if m:
                errors.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
            else:
                rest.append(line)
        return errors, rest, r

    def test_the_readme_reference_spec_is_accepted(self):
        """The annotated spec under README "Pipeline spec" is what users
        copy: it must be a valid spec (it had a key written twice)."""
        readme = open(os.path.join(os.environ.get("DROVER_SOURCE_DIR", os.path.join(
            os.path.dirname(__file__), "..", "..")), "README.md")).read()
        at = readme.index("## Pipeline spec")
        start = readme.index("```yaml\n", at) + len("```yaml\n")
        text = readme[start:readme.index("```", start)]
        c = self.c
        r = c.cli("submit", c.write_spec(text, "readme.yaml"), "-p", "env=prod")
        self.assertEqual(r.rc, 0, "README's spec refused: %r" % r)

    def test_every_error_is_printed_with_its_position(self):
        errors, rest, r = self.refused(
            "name: many\n"
            "steps:\n"
            "  - name: train\n"
            "    script: echo train\n"
            "    timeout: 30\n"                # 5:14: no unit
            "  - name: eval\n"
            "    script: echo eval\n"
            "    need: [train]\n"              # 8:5: did you mean needs
            "  - name: report\n"
            "    script: echo report\n"
            "    needs: [trian]\n"             # 11:13: did you mean train
            "    resources: {memory: 12Qi}\n",  # 12:25
            "many.yaml")
        self.assertEqual(rest, [], r)
        self.assertEqual([(e[1], e[2]) for e in errors], [(5, 14), (8, 5), (11, 13), (12, 25)], r)
        self.assertTrue(all(e[0].endswith("many.yaml") for e in errors), r)
        self.assertIn("write 30s", errors[0][3])
        self.assertIn("unknown key 'need' in step 'eval'; did you mean 'needs'?", errors[1][3])
        self.assertIn("needs unknown step 'trian'; did you mean 'train'?", errors[2][3])
        self.assertIn("12Qi", errors[3][3])

    def test_twenty_then_a_count(self):
        text = "name: lots\nsteps:\n"
        for i in range(25):
            text += "  - name: s%d\n    script: 'true'\n    bogus%d: 1\n" % (i, i)
        errors, rest, r = self.refused(text, "lots.yaml")
        self.assertEqual([(e[1], e[2]) for e in errors], [(5 + 3 * i, 5) for i in range(20)], r)
        self.assertEqual(rest, ["drover: error: and 5 more errors"], r)


if __name__ == "__main__":
    harness.main()
