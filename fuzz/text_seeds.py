#!/usr/bin/env python3
"""text_seeds — (re)write the seed corpora of the text fuzz targets.

    python3 fuzz/text_seeds.py [--out tests/fuzz]

spec/      examples/ml/pipeline.yaml, every spec-looking string of
           tests/unit/test_spec.c and tests/integration/*.py (string
           literals, and dict literals rendered with the integration
           harness's to_yaml), plus a few with `-p` overrides (the target
           reads "YAML NUL key=value...").
expr/      the string literals of tests/unit/test_expr.c that look like
           expressions, and the `when:` of the specs above.
progress/  hand-written lines and streams.

Seed files are named by content (sha1 prefix), so rerunning adds what is
new and never duplicates; files already there are left alone (crash
reproducers live next to them, named crash-*). The agents corpus is written
by build-fuzz/gen_agents_seeds instead.
"""
import argparse
import ast
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
C_GAP = re.compile(r'\s*(?:/\*.*?\*/\s*)*', re.S)


def c_unescape(s):
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39, "a": 7,
              "b": 8, "f": 12, "v": 11, "?": 63}
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            m = re.match(r"[0-9a-fA-F]+", s[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        elif n in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i + 1:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            out.append(simple.get(n, ord(n)))
            i += 2
    return bytes(out)


def c_strings(path):
    """Adjacent C string literals (joined across whitespace and comments)."""
    text = open(path, encoding="utf-8").read()
    pos, out = 0, []
    while True:
        m = C_STRING.search(text, pos)
        if not m:
            return out
        parts = [m.group(1)]
        end = m.end()
        while True:
            g = C_GAP.match(text, end)
            m2 = C_STRING.match(text, g.end())
            if not m2:
                break
            parts.append(m2.group(1))
            end = m2.end()
        out.append(c_unescape("".join(parts)))
        pos = end


def py_specs(path, to_yaml):
    tree = ast.parse(open(path, encoding="utf-8").read())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            v = node.value.encode() if isinstance(node.value, str) else node.value
            if b"steps:" in v and len(v) < 20000:
                out.append(v)
        elif isinstance(node, ast.Dict):
            try:
                d = ast.literal_eval(node)
            except (ValueError, SyntaxError):
                continue
            if isinstance(d, dict) and "steps" in d:
                out.append(to_yaml(d).encode())
    return out


def write(dirpath, blobs, limit):
    os.makedirs(dirpath, exist_ok=True)
    seen, n = set(), 0
    for b in blobs:
        h = hashlib.sha1(b).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        p = os.path.join(dirpath, "seed-" + h[:12])
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(b)
        n += 1
        if n >= limit:
            break
    print("%s: %d seeds" % (os.path.relpath(dirpath, ROOT), n))


PROGRESS = [
    b'{"progress":0.5}\n',
    b'{"progress":0}\n{"progress":1}\n',
    b'{"checkpoint":true,"step":3}\n',
    b'{"progress":0.42,"checkpoint":true,"step":1200}\n',
    b'{"checkpoint":false}\n',
    b'{"progress": 1e-3, "other": [1, {"x": null}], "step": 9007199254740991}\n',
    b'  {"progress":0.25}\r\n\n\n',
    b'{"progress":"0.5"}\n{"progress":1.5}\n{"step":-1}\n{"step":2.5}\n',
    b'{"checkpoint":1}\nnot json\n[1,2]\n{"progress":0.1,"progress":0.2}\n',
    b'{"progress":0.3}\n{"progress":0.6',
    b'{"msg":"\\u00e9\\ud83d\\ude00","progress":0.7}\n',
    b"{\"progress\":0.1}\n" + b" " * 5000 + b"\n{\"progress\":0.9}\n",
]

# References written with whitespace inside the braces (issue 14: the spec,
# droverd's expansion and its per-item decision must read them alike).
SPACED_SPECS = [
    b"name: sp\nsteps:\n  - name: s\n    for_each: [1, 4, 5]\n"
    b"    when: \"{{ item }} != 4\"\n    command: [w, \"{{ item }}\", \"{{\\titem\\n}}\"]\n",
    b"name: sp\nsteps:\n  - {name: l, command: [l], outputs: {params: [xs, t]}}\n"
    b"  - name: e\n    needs: [l]\n    for_each: \"  {{ steps.l.outputs.params.xs }} \"\n"
    b"    when: \"'{{ item.k }}' != skip && {{ steps.l.outputs.params.t }} == go\"\n"
    b"    env: {K: \"{{ item.k }}\", R: \"{{ run.name }}\"}\n"
    b"    command: [w, \"{{ item.k }}-{{ run.id }}\"]\n",
    b"name: sp\nparams: {n: \"1\"}\nsteps:\n  - name: a\n"
    b"    command: [x, \"{{ params.n }}\", \"{{\\n params.n \\t}}\"]\n"
    b"    when: \"{{ params.n }} == 1 || {{ run.name }} == sp\"\n"
    b"finally:\n  - {name: f, command: [x, \"{{ run.status }}\"]}\n\0n=2\n",
    b"name: sp\nsteps:\n  - {name: a, command: [x, \"{{ }}\", \"{{ item }}\"]}\n",
]
# Trigger rules, depends expressions and tolerated failures (issue 15).
TRIGGER_SPECS = [
    b"name: tr\nsteps:\n  - {name: a, command: [a]}\n  - {name: b, command: [b], when: \"1 == 2\"}\n"
    b"  - name: j\n    needs: [a, b]\n    trigger: none_failed_min_one_success\n    command: [j]\n"
    b"  - {name: k, needs: [a, b], trigger: one_failed, command: [k]}\n",
    b"name: tr\nsteps:\n  - {name: A, command: [a]}\n"
    b"  - {name: B, depends: A, continue_on: failed, command: [b]}\n"
    b"  - {name: C, depends: A, command: [c]}\n"
    b"  - name: D\n    depends: \"B && C || (A.failed && !C.skipped) || B.Succeeded\"\n"
    b"    command: [d]\n",
    b"name: tr\nsteps:\n  - {name: a.b-c, command: [a]}\n"
    b"  - {name: z, depends: \"a.b-c.done && !a.b-c.cancelled || a.b-c.cached\", command: [z]}\n"
    b"finally:\n  - {name: f, command: [f]}\n  - {name: g, depends: \"f.failed\", command: [g]}\n",
    b"name: tr\nsteps:\n  - {name: a, depends: \"b.failed\", command: [a]}\n"
    b"  - {name: b, needs: [a], trigger: all_done, depends: a, command: [b]}\n",
    b"name: tr\nsteps:\n  - {name: a, command: [a]}\n"
    b"  - {name: b, needs: [a], trigger: nope, continue_on: error, command: [b]}\n"
    b"  - {name: c, depends: \"((a.succeeded)\", command: [c]}\n",
]
# Templated settings and fan-out skips (issue 15): timeout, image,
# resources and retries.limit from items and upstream outputs, literal
# items checked at submit, per-item `when` that skips some or all items.
TEMPLATED_SPECS = [
    b"name: ts\nsteps:\n  - {name: up, command: [u], outputs: {params: [n, c]}}\n"
    b"  - name: f\n    needs: [up]\n"
    b"    for_each: [{cpu: \"2\", t: 1s, img: a}, {cpu: 500m, t: 1m, img: \"\"}]\n"
    b"    image: \"{{item.img}}\"\n    timeout: \"{{ item.t }}\"\n"
    b"    resources: {cpu: \"{{item.cpu}}\", memory: \"{{steps.up.outputs.params.c}}\", "
    b"gpu: \"{{steps.up.outputs.params.n}}\"}\n"
    b"    retries: {limit: \"{{steps.up.outputs.params.n}}\", backoff: 1s}\n"
    b"    command: [w, \"{{item}}\"]\n",
    b"name: ts\nparams: {t: 5m}\ndefaults:\n  image: \"{{item}}\"\n  retries: \"{{item}}\"\n"
    b"  timeout: \"{{params.t}}\"\nsteps:\n  - {name: a, command: [x], for_each: [\"1\", \"2\"]}\n"
    b"\0t=abc\n",
    b"name: ts\nsteps:\n  - name: a\n    command: [x]\n    for_each: {range: [60, 70]}\n"
    b"    resources: {gpu: \"{{item}}\", cpu: \"{{item}}m\"}\n",
    b"name: ts\nsteps:\n  - name: a\n    command: [x]\n    image: \"{{item.image}}\"\n"
    b"    timeout: \"{{run.status}}\"\n",
    b"name: ts\nsteps:\n  - name: s\n    for_each: [\"1\", \"2\", \"3\"]\n"
    b"    when: \"{{item}} != 2\"\n    command: [w]\n    outputs: {params: [r]}\n"
    b"  - name: g\n    needs: [s]\n    for_each: \"{{steps.s.outputs.params.r}}\"\n"
    b"    timeout: \"{{item}}\"\n    command: [g, \"{{item}}\"]\n"
    b"  - name: n\n    for_each: [\"1\"]\n    when: \"{{item}} > 5\"\n    command: [n]\n"
    b"  - {name: after, needs: [n], command: [a]}\n",
]
SPACED_EXPRS = [
    b"{{ item }} != 4",
    b"{{\titem\n}} != 4 && '{{ item.k }}' == a",
    b"{{ params.n }} == 10 && '{{  params.n\t}}' > 9",
    b"{{ steps.e.outputs.params.better }} || {{ item }}",
    b"'{{ run.status }}' == Succeeded",
    b"{{ }} == 1",
    b"{{ item",
]


# Outcomes as data (issue 15): step status, exit code and result, and the
# exit handlers' run.failures and run.duration.
OUTCOME_EXPRS = [
    b"{{steps.flip.outputs.result}} == heads",
    b"'{{ steps.t.status }}' == failed && {{steps.t.exit_code}} != 2",
    b"{{steps.a.b.status}} == skipped || '{{run.failures}}' != '[]'",
    b"{{run.duration}} > 60",
]
OUTCOME_SPECS = [
    b"name: coin\nsteps:\n  - {name: flip, script: echo tails}\n  - name: heads\n"
    b"    needs: [flip]\n    when: '{{steps.flip.outputs.result}} == heads'\n"
    b"    env: {S: '{{steps.flip.status}}/{{steps.flip.exit_code}}'}\n"
    b"    script: echo {{steps.flip.outputs.result}}\n"
    b"  - {name: each, needs: [flip], for_each: '{{steps.flip.outputs.result}}', "
    b"command: [x, '{{item}}']}\n"
    b"finally:\n  - {name: f, command: [n, '{{run.failures}}', '{{run.duration}}']}\n",
]


# Templates, groups, recursion and imports (issue 16). A bundle is the
# spec, then each imported file after a line "---8<--- PATH" (fuzz_spec.c).
REUSE_SPECS = [
    b"name: r\ntemplates:\n  fit:\n    inputs:\n      params: {lr: \"0.1\", n: {default: \"2\", "
    b"type: integer}}\n      artifacts: [data]\n    command: [fit, \"{{inputs.params.lr}}\", "
    b"\"{{inputs.params.n}}\"]\n    outputs: {params: [score], artifacts: [model]}\n"
    b"    retries: 1\n    timeout: \"{{inputs.params.n}}m\"\n"
    b"steps:\n  - {name: prep, command: [p], outputs: {artifacts: [d]}}\n"
    b"  - name: one\n    uses: fit\n    needs: [prep]\n    with: {lr: \"{{item}}\"}\n"
    b"    for_each: [\"0.1\", \"0.2\"]\n    inputs: {artifacts: {data: prep.d}}\n",
    b"name: r\nparams: {lrs: '[\"0.1\",\"0.01\"]'}\ntemplates:\n  fit:\n"
    b"    inputs: {params: {lr: null}, artifacts: [data]}\n    command: [f, \"{{inputs.params.lr}}\"]\n"
    b"    outputs: {params: [score], artifacts: [model]}\n"
    b"  te:\n    inputs: {params: {lr: null}, artifacts: [data]}\n    steps:\n"
    b"      - {name: train, uses: fit, with: {lr: \"{{inputs.params.lr}}\"}, inputs: {artifacts: "
    b"{data: inputs.artifacts.data}}}\n"
    b"      - {name: eval, needs: [train], command: [e, \"{{steps.train.outputs.params.score}}\"], "
    b"outputs: {params: [best]}, inputs: {artifacts: {m: train.model}}}\n"
    b"    finally:\n      - {name: c, command: [echo, \"{{run.status}}\"]}\n"
    b"    outputs:\n      params: {best: \"{{steps.eval.outputs.params.best}}\"}\n"
    b"      artifacts: {model: train.model, raw: inputs.artifacts.data}\n"
    b"steps:\n  - {name: prep, command: [p], outputs: {artifacts: [d]}}\n"
    b"  - {name: sweep, uses: te, needs: [prep], for_each: \"{{params.lrs}}\", parallelism: 2, "
    b"with: {lr: \"{{item}}\"}, inputs: {artifacts: {data: prep.d}}}\n"
    b"  - {name: report, needs: [sweep], command: [r, \"{{steps.sweep.outputs.params.best}}\"]}\n",
    # recursion: coinflip until heads, and a cycle of two templates
    b"name: flip\nmax_depth: 20\ntemplates:\n  flip:\n    steps:\n"
    b"      - {name: toss, command: [toss], outputs: {params: [side]}}\n"
    b"      - name: again\n        needs: [toss]\n"
    b"        when: \"'{{steps.toss.outputs.params.side}}' == tails\"\n        uses: flip\n"
    b"steps:\n  - {name: start, uses: flip}\n",
    b"name: cyc\ntemplates:\n  a:\n    inputs: {params: {n: \"3\"}}\n    steps:\n"
    b"      - {name: x, command: [\"{{inputs.params.n}}\"], outputs: {params: [m]}}\n"
    b"      - {name: y, uses: b, needs: [x], when: \"{{steps.x.outputs.params.m}} > 0\", "
    b"with: {m: \"{{steps.x.outputs.params.m}}\"}}\n"
    b"  b:\n    inputs: {params: {m: {type: integer}}}\n    steps:\n"
    b"      - {name: z, uses: a, with: {n: \"{{inputs.params.m}}\"}}\n"
    b"steps:\n  - {name: go, uses: a, with: {n: 5}}\n",
    # imports: bundles
    b"name: imp\nimports:\n  - lib/math.yaml\n  - {path: lib/train.yaml, as: t}\n"
    b"steps:\n  - {name: a, uses: math.add, with: {a: \"1\"}}\n"
    b"  - {name: b, uses: t.fit, needs: [a], with: {x: \"{{steps.a.outputs.params.sum}}\"}}\n"
    b"---8<--- lib/math.yaml\nname: math\nimports: [../base/core.yaml]\ntemplates:\n"
    b"  add:\n    inputs: {params: {a: null, b: \"2\"}}\n"
    b"    command: [add, \"{{inputs.params.a}}\", \"{{inputs.params.b}}\"]\n"
    b"    outputs: {params: [sum]}\n"
    b"  twice:\n    steps:\n      - {name: one, uses: add, with: {a: \"1\"}}\n"
    b"      - {name: two, uses: core.inc, needs: [one]}\n"
    b"---8<--- base/core.yaml\ntemplates:\n  inc: {command: [inc]}\n"
    b"---8<--- lib/train.yaml\ntemplates:\n  fit:\n    inputs: {params: {x: null}}\n"
    b"    script: echo {{inputs.params.x}}\n",
    b"name: imp\nimports: [a.yaml]\nsteps:\n  - {name: s, uses: a.x}\n"
    b"---8<--- a.yaml\nimports: [b.yaml]\ntemplates: {x: {command: [x]}}\n"
    b"---8<--- b.yaml\nimports: [a.yaml]\n",
    b"name: imp\nimports: [{path: ../up/m.yaml, as: m}, m.yaml]\nsteps:\n  - {name: s, uses: m.y}\n"
    b"---8<--- ../up/m.yaml\ntemplates:\n  y:\n    command: [\"{{inputs.params.q}}\"]\n    colour: red\n"
    b"---8<--- m.yaml\nsteps: []\n",
    b"name: imp\nimports: [lib/m.yaml]\nsteps:\n  - {name: s, uses: m.g, with: {n: x}}\n"
    b"---8<--- lib/m.yaml\ntemplates:\n  g:\n    inputs: {params: {n: {type: number}}}\n"
    b"    steps:\n      - {name: a, command: [\"{{inputs.params.n}}\"]}\n"
    b"    outputs: {params: {o: \"{{steps.a.outputs.result}}\"}}\n",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fuzz"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    sys.dont_write_bytecode = True
    from harness import to_yaml  # noqa: E402

    specs = [open(os.path.join(ROOT, "examples/ml/pipeline.yaml"), "rb").read()]
    specs += SPACED_SPECS
    specs += TRIGGER_SPECS
    specs += OUTCOME_SPECS
    specs += TEMPLATED_SPECS
    specs += REUSE_SPECS
    integ = os.path.join(ROOT, "tests", "integration")
    for f in sorted(os.listdir(integ)):
        if f.startswith("test_") and f.endswith(".py"):
            specs += py_specs(os.path.join(integ, f), to_yaml)
    unit = [s for s in c_strings(os.path.join(ROOT, "tests/unit/test_spec.c"))
            if b"steps:" in s or b"name:" in s]
    specs += unit[:80]
    specs += [s for s in c_strings(os.path.join(ROOT, "tests/unit/test_spec_reuse.c"))
              if b"steps:" in s or b"templates:" in s][:40]
    # -p overrides after a NUL byte
    specs += [
        b"name: p\nparams:\n  n: \"1\"\n  msg: hi\nsteps:\n  - name: a\n"
        b"    command: [echo, \"{{params.n}}\", \"{{ params.msg }}\"]\n\0n=5\nmsg=a b\n",
        b"name: p\nparams: {lrs: '[1, 2]'}\nsteps:\n  - name: a\n    for_each: \"{{params.lrs}}\"\n"
        b"    command: [echo, \"{{item}}\"]\n\0lrs=[\"x\", {\"y\": 1}]\nnope=1\n",
        b"name: p\nparams: {n: \"3\"}\nsteps:\n  - name: a\n"
        b"    for_each: {range: [\"{{params.n}}\", -4, -2]}\n"
        b"    command: [echo, \"{{item}}\"]\n\0n=9\n",
    ]
    write(os.path.join(args.out, "spec"), specs, 220)

    exprs = list(SPACED_EXPRS) + OUTCOME_EXPRS
    for s in specs:
        for m in re.finditer(rb"when: *(\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\n]+)", s):
            w = m.group(1)
            if w[:1] in b"\"'":
                w = w[1:-1]
            exprs.append(w)
    exprs += [b"{{echo:1 || 0}} == '1 || 0'", b"{{?{{params.n}} > 3}} && !{{?false}}",
              b"'{{params.big}}' == x", b"{{params.nan}} != {{params.huge}}"]
    for s in c_strings(os.path.join(ROOT, "tests/unit/test_expr.c")):
        if 0 < len(s) <= 300 and not s.startswith(b"col ") and \
                re.search(rb"[=<>!&|(]|\{\{|^(true|false|yes|no)$", s):
            exprs.append(s)
    write(os.path.join(args.out, "expr"), exprs, 135)

    write(os.path.join(args.out, "progress"), PROGRESS, 100)


if __name__ == "__main__":
    main()
