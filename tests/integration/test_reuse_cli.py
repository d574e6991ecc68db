"""Imports from the command line (issue 16, item 5) and groups in `run get`
(item 6), through the real droverd: `drover submit` reads the files a spec
imports (transitively) and sends them with it; droverd stores them with the
run in the same commit (LMDB database "specs"), so `drover run spec ID`
prints them (or `-o DIR` writes them, ready to submit again) whatever
happens to the files later, across a kill -9, until the run is deleted.
Errors name the importing file and the entry's line (a file that cannot be
read) or the imported file's own path (an error inside it). What a client
sends is bounded again by droverd: too many imports, too many bytes, paths
that are not relative, all refused with a reason.

Templates come from the spec compiler (common/spec_reuse.c, spec_import.c)
and groups from the runtime (scheduler/dag.c): here only what the command
line and droverd's API make of them."""
import os
import re
import shutil
import socket
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task, wait_final  # noqa: E402

import yaml  # noqa: E402  (python3-yaml)

NOT_FOUND, REFUSED, ERROR = 3, 6, 7

MAIN = """\
name: reuse-cli
imports:
  - lib/math.yaml
  - {path: lib/train.yaml, as: t}
steps:
  - name: hello
    script: echo hello > %(marker)s
"""
MATH = """\
# math: a library of steps
imports: [util.yaml]
templates:
  add:
    inputs: {params: {a: null, b: "1"}}
    command: ["sh", "-c", "echo $(( {{inputs.params.a}} + {{inputs.params.b}} ))"]
"""
TRAIN = """\
imports:
  - util.yaml
templates:
  fit:
    inputs: {params: {lr: "0.1"}}
    command: ["echo", "fit {{inputs.params.lr}}"]
"""
UTIL = """\
templates:
  noop:
    command: ["true"]
"""


# ------------------------------------------------------------ raw API client
# A minimal ZMTP 3.0 REQ client (NULL mechanism) and protobuf writer/reader,
# to send what `drover submit` never would (as test_malformed.py does).


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((field << 3) | 2) + varint(len(data)) + data


def pb_fields(data):
    """Top-level fields of a protobuf message: [(number, value)], value an
    int (varint) or bytes (length-delimited)."""
    out, i = [], 0
    while i < len(data):
        key, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out.append((field, v))
        elif wire == 2:
            n, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out.append((field, data[i:i + n]))
            i += n
        else:
            raise ValueError("wire type %d" % wire)
    return out


def raw_submit(api_sock, spec, imports, file="main.yaml"):
    """Send a SubmitRequest {file, spec, imports: [(path, text)]} on the API
    socket; return (error, error_code, spec_errors: [(file, line, col,
    message)], run_id)."""
    sub = pb_bytes(1, file) + pb_bytes(2, spec)
    for path, text in imports:
        sub += pb_bytes(150, pb_bytes(1, path) + pb_bytes(2, text))
    req = pb_bytes(1, sub)  # ApiRequest.submit = 1
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30 * harness.SCALE)
    s.connect(api_sock)

    def recv_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("droverd closed the connection")
            buf += chunk
        return buf

    def send_frame(body, more=False, command=False):
        flags = (1 if more else 0) | (4 if command else 0)
        if len(body) > 255:
            s.sendall(bytes([flags | 2]) + struct.pack(">Q", len(body)) + body)
        else:
            s.sendall(bytes([flags, len(body)]) + body)

    def recv_frame():
        flags = recv_exact(1)[0]
        size = struct.unpack(">Q", recv_exact(8))[0] if flags & 2 else recv_exact(1)[0]
        return flags, recv_exact(size)

    try:
        s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0")
                  + b"\x00" + b"\0" * 31)
        recv_exact(64)
        send_frame(b"\x05READY" + bytes([11]) + b"Socket-Type" + struct.pack(">I", 3) + b"REQ",
                   command=True)
        recv_frame()  # the peer's READY
        send_frame(b"", more=True)
        send_frame(req)
        frames = []
        while True:
            flags, body = recv_frame()
            if flags & 4:
                continue  # a command (PING)
            frames.append(body)
            if not flags & 1:
                break
    finally:
        s.close()
    resp = pb_fields(frames[-1])
    error = b"".join(v for f, v in resp if f == 1).decode()
    code = next((v for f, v in resp if f == 11), 0)
    run_id = b"".join(v for f, v in resp if f == 2).decode()
    errs = []
    for f, v in resp:
        if f == 150:
            e = dict(pb_fields(v))
            errs.append((e.get(1, b"").decode(), e.get(2, 0), e.get(3, 0), e.get(4, b"").decode()))
    return error, code, errs, run_id


API_ERROR_INVALID = 3  # ApiErrorCode


class ReuseCliTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=2)

    def write_tree(self, root, files):
        """files: relative path -> text, under root (made)."""
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        return root

    def library(self, root=None):
        c = self.c
        root = root or c.path("src")
        marker = c.path("hello-%d" % len(os.listdir(c.tmp)))
        files = {"main.yaml": MAIN % {"marker": marker}, "lib/math.yaml": MATH,
                 "lib/train.yaml": TRAIN, "lib/util.yaml": UTIL}
        self.write_tree(root, files)
        return root, files, marker

    def run_ids(self):
        return [r["id"] for r in self.c.runs()]

    # ---- submit sends the imports; run spec prints them

    def test_submit_sends_imports_and_run_spec_prints_them(self):
        c = self.c
        root, files, marker = self.library()
        rid = c.submit(os.path.join(root, "main.yaml"))
        self.assertRunSucceeded(wait_final(c, rid))
        self.assertTrue(os.path.exists(marker))
        # the files change or go away: what the run was submitted from stays
        shutil.rmtree(root)
        r = c.cli("run", "spec", rid)
        self.assertEqual(r.rc, 0, r)
        order = ["lib/math.yaml", "lib/train.yaml", "lib/util.yaml"]  # as met, breadth first
        want = files["main.yaml"] + "".join(
            "---\n# import: %s\n%s" % (p, files[p]) for p in order)
        self.assertEqual(r.out, want)
        self.assertEqual(r.err, "")
        # one YAML document per file
        docs = list(yaml.safe_load_all(r.out))
        self.assertEqual(docs, [yaml.safe_load(files[p]) for p in ["main.yaml"] + order])

    def test_run_spec_of_a_spec_without_imports_and_its_params(self):
        c = self.c
        text = ("name: plain\nparams: {who: x}\n"
                "steps:\n  - {name: s, script: 'echo {{params.who}}'}")  # no final newline
        rid = c.submit(text, params={"who": "me"})
        r = c.cli("run", "spec", rid)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, text + "\n")
        self.assertIn("note: run %s was submitted with -p who=me" % rid, r.err)
        r = c.cli("run", "spec", "r999999")
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("no run 'r999999'", r.err)

    def test_output_dir_reproduces_the_run(self):
        c = self.c
        root, files, marker = self.library()
        rid = c.submit(os.path.join(root, "main.yaml"))
        self.assertRunSucceeded(wait_final(c, rid))
        out = c.path("again")
        r = c.cli("run", "spec", rid, "-o", out)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(r.out.splitlines()),
                         sorted(os.path.join(out, p) for p in files))
        for rel, text in files.items():
            with open(os.path.join(out, rel)) as f:
                self.assertEqual(f.read(), text, rel)
        # written again over itself: replaced, same bytes
        self.assertEqual(c.cli("run", "spec", rid, "-o", out).rc, 0)
        os.unlink(marker)
        rid2 = c.submit(os.path.join(out, "main.yaml"), extra=["--no-cache"])
        self.assertRunSucceeded(wait_final(c, rid2))
        self.assertTrue(os.path.exists(marker), "the resubmitted run did not run")
        a, b = c.cli("run", "spec", rid).out, c.cli("run", "spec", rid2).out
        self.assertEqual(a, b)

    def test_templates_from_imports_run_and_rerun_from_the_output_dir(self):
        """A step uses a template of an imported file (under its `as` prefix),
        which itself uses a sibling of its own file; written out with -o
        and the originals gone, the spec submits and runs the same."""
        c = self.c
        out_file = c.path("fit.out")
        root = c.path("tpl")
        self.write_tree(root, {
            "main.yaml": "name: tpl\nimports:\n  - {path: lib/train.yaml, as: t}\n"
                         "steps:\n  - name: one\n    uses: t.fit\n    with: {lr: '0.5'}\n",
            "lib/train.yaml": "templates:\n"
                              "  base:\n"
                              "    inputs: {params: {lr: null}}\n"
                              "    script: echo fit {{inputs.params.lr}} >> %s\n"
                              "  fit:\n"
                              "    inputs: {params: {lr: '0.1'}}\n"
                              "    steps:\n"
                              "      - {name: go, uses: base, with: {lr: '{{inputs.params.lr}}'}}\n"
                              % out_file})
        rid = c.submit(os.path.join(root, "main.yaml"))
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual(harness.read_lines(out_file), ["fit 0.5"])
        go = task(run, "one.go")
        self.assertEqual((go["group"], go["depth"], go["template"]), ("one", 1, "t.base"), go)
        self.assertEqual((task(run, "one")["is_group"], task(run, "one")["template"]),
                         (True, "t.fit"))
        out = c.path("tpl-again")
        self.assertEqual(c.cli("run", "spec", rid, "-o", out).rc, 0)
        shutil.rmtree(root)
        rid2 = c.submit(os.path.join(out, "main.yaml"), extra=["--no-cache"])
        self.assertRunSucceeded(wait_final(c, rid2))
        self.assertEqual(harness.read_lines(out_file), ["fit 0.5", "fit 0.5"])

    def test_output_dir_refuses_a_path_leaving_it(self):
        """An import outside the spec's directory (../) travels and is
        printed, but -o DIR refuses to write it, and writes nothing."""
        c = self.c
        root = c.path("tree")
        self.write_tree(root, {
            "pipelines/main.yaml": "name: up\nimports: [../shared/util.yaml]\n"
                                   "steps:\n  - {name: s, command: ['true']}\n",
            "shared/util.yaml": UTIL})
        rid = c.submit(os.path.join(root, "pipelines", "main.yaml"))
        self.assertRunSucceeded(wait_final(c, rid))
        r = c.cli("run", "spec", rid)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("---\n# import: ../shared/util.yaml\n" + UTIL, r.out)
        out = c.path("out")
        r = c.cli("run", "spec", rid, "-o", out)
        self.assertEqual(r.rc, ERROR, r)
        self.assertIn("'../shared/util.yaml' would be written outside", r.err)
        self.assertFalse(os.path.exists(out), "something was written")
        self.assertFalse(os.path.exists(c.path("shared")))

    # ---- errors

    def test_missing_import_names_the_file_and_line(self):
        c = self.c
        root = c.path("miss")
        self.write_tree(root, {
            "main.yaml": "name: miss\n"
                         "imports:\n"
                         "  - lib/there.yaml\n"
                         "  - {path: lib/nope.yaml, as: n}\n"
                         "steps:\n  - {name: s, command: ['true']}\n",
            "lib/there.yaml": "imports:\n  - ok.yaml\n  - gone.yaml\ntemplates: {}\n",
            "lib/ok.yaml": UTIL})
        before = self.run_ids()
        main = os.path.join(root, "main.yaml")
        r = c.cli("submit", main)
        self.assertEqual(r.rc, REFUSED, r)
        self.assertEqual(r.out, "")
        # the first entry that cannot be read: main's second, at 4:12
        self.assertIn("%s:4:12: cannot read imported file 'lib/nope.yaml' (%s): "
                      "No such file or directory" % (main, os.path.join(root, "lib/nope.yaml")),
                      r.err)
        # fixed there: the next one, inside an imported file, names that file
        with open(main, "w") as f:
            f.write("name: miss\nimports: [lib/there.yaml]\nsteps:\n  - {name: s, command: [x]}\n")
        r = c.cli("submit", main)
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("%s:3:5: cannot read imported file 'lib/gone.yaml'"
                      % os.path.join(root, "lib/there.yaml"), r.err)
        # a directory where a file should be
        os.makedirs(os.path.join(root, "lib", "gone.yaml"))
        r = c.cli("submit", main)
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("Is a directory", r.err)
        self.assertEqual(self.run_ids(), before, "a refused submit stored a run")

    def test_error_inside_an_imported_file_names_it(self):
        """A template may not have `needs` (its using step has them):
        refused at that key of the imported file, named by its path."""
        c = self.c
        root = c.path("bad")
        self.write_tree(root, {
            "main.yaml": "name: bad\nimports: [lib/bad.yaml]\n"
                         "steps:\n  - {name: s, uses: bad.broken}\n",
            "lib/bad.yaml": "templates:\n"
                            "  broken:\n"
                            "    command: ['true']\n"
                            "    needs: [x]\n"})
        r = c.cli("submit", os.path.join(root, "main.yaml"))
        self.assertEqual(r.rc, REFUSED, r)
        lines = [m.groups() for m in re.finditer(
            r"^drover: error: lib/bad\.yaml:(\d+):(\d+): (.*)$", r.err, re.M)]
        self.assertTrue(lines, "no error names lib/bad.yaml: %r" % r)
        self.assertEqual(lines[0][0], "4", r)
        self.assertEqual(self.run_ids(), [])
        # droverd's reply carries the file in each SpecError
        with open(os.path.join(root, "main.yaml")) as f:
            text = f.read()
        with open(os.path.join(root, "lib/bad.yaml")) as f:
            bad = f.read()
        error, code, errs, rid = raw_submit(c.path("api.sock"), text, [("lib/bad.yaml", bad)])
        self.assertEqual((code, rid), (API_ERROR_INVALID, ""), error)
        self.assertTrue(errs, error)
        self.assertEqual((errs[0][0], errs[0][1]), ("lib/bad.yaml", 4), errs)

    def test_spec_errors_carry_each_files_name(self):
        """droverd's SpecError.file is the file the error is in, whatever
        it is called, a ':' in the name included (not YAML at all: any
        compiler says so at the file's position)."""
        c = self.c
        main = ("name: m\nimports: [{path: 'lib/x:1.yaml', as: x}]\n"
                "steps:\n  - {name: s, command: ['true']}\n")
        error, code, errs, rid = raw_submit(
            c.path("api.sock"), main, [("lib/x:1.yaml", "templates: [unclosed\n")],
            file="dir/a:2:3.yaml")
        self.assertEqual((code, rid), (API_ERROR_INVALID, ""), error)
        mine = [e for e in errs if e[0] == "lib/x:1.yaml"]
        self.assertTrue(mine, (error, errs))
        self.assertGreater(mine[0][1], 0, errs)
        error, code, errs, rid = raw_submit(c.path("api.sock"), "name: m\nsteps: 3\n", [],
                                            file="dir/a:2:3.yaml")
        self.assertEqual(code, API_ERROR_INVALID, error)
        self.assertEqual([e[:2] for e in errs], [("dir/a:2:3.yaml", 2)], errs)

    # ---- durable, deleted with the run

    def test_spec_survives_kill_9_and_goes_with_the_run(self):
        c = self.c
        root, files, marker = self.library()
        gate = c.path("gate")
        with open(os.path.join(root, "main.yaml"), "a") as f:
            f.write("  - name: wait\n    script: while [ ! -e %s ]; do sleep 0.05; done\n" % gate)
        with open(os.path.join(root, "main.yaml")) as f:
            files["main.yaml"] = f.read()
        rid = c.submit(os.path.join(root, "main.yaml"))
        c.kill_droverd()  # at once: "submitted" means stored, the spec with the run
        c.start_droverd()
        before = c.cli("run", "spec", rid)
        self.assertEqual(before.rc, 0, before)
        self.assertTrue(before.out.startswith(files["main.yaml"] + "---\n# import: lib/math.yaml\n"),
                        before)
        open(gate, "w").close()
        self.assertRunSucceeded(wait_final(c, rid))
        c.kill_droverd()
        c.start_droverd()
        self.assertEqual(c.cli("run", "spec", rid).out, before.out)
        r = c.cli("run", "delete", rid)
        self.assertEqual(r.rc, 0, r)
        r = c.cli("run", "spec", rid)
        self.assertEqual(r.rc, NOT_FOUND, r)
        c.kill_droverd()
        c.start_droverd()
        r = c.cli("run", "spec", rid)
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("no run '%s'" % rid, r.err)

    # ---- bounds: what a client may send

    def test_too_many_imports_refused_by_the_cli(self):
        c = self.c
        root = c.path("many")
        files = {"main.yaml": "name: many\nimports:\n" +
                 "".join("  - lib/f%03d.yaml\n" % i for i in range(101)) +
                 "steps:\n  - {name: s, command: ['true']}\n"}
        for i in range(101):
            files["lib/f%03d.yaml" % i] = UTIL
        self.write_tree(root, files)
        r = c.cli("submit", os.path.join(root, "main.yaml"))
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("%s:103:5: too many imports: the spec imports more than 100 files"
                      % os.path.join(root, "main.yaml"), r.err)
        self.assertEqual(self.run_ids(), [])

    def test_an_import_over_a_mebibyte_refused_by_the_cli(self):
        c = self.c
        root = c.path("big")
        self.write_tree(root, {"main.yaml": "name: big\nimports: [huge.yaml]\n"
                                            "steps:\n  - {name: s, command: ['true']}\n",
                               "huge.yaml": "# " + "x" * (1 << 20) + "\ntemplates: {}\n"})
        r = c.cli("submit", os.path.join(root, "main.yaml"))
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("main.yaml:2:11: imported file 'huge.yaml'", r.err)
        self.assertIn("is larger than 1 MiB", r.err)

    def test_droverd_bounds_imports_whatever_the_client(self):
        c = self.c
        sock = c.path("api.sock")
        main = "name: raw\nsteps:\n  - {name: s, command: ['true']}\n"
        # too many files
        error, code, _, rid = raw_submit(sock, main, [("f%d.yaml" % i, "") for i in range(101)])
        self.assertEqual((code, rid), (API_ERROR_INVALID, ""), error)
        self.assertIn("the spec imports 101 files; the limit is 100", error)
        # paths that are not relative ones
        for bad in ("/etc/passwd", "a/../../b.yaml", "a//b.yaml", "./a.yaml", "", "a\x1b[2J.yaml"):
            error, code, _, rid = raw_submit(sock, main, [(bad, "templates: {}\n")])
            self.assertEqual((code, rid), (API_ERROR_INVALID, ""), (bad, error))
            self.assertIn("which is not a relative path", error, bad)
            self.assertNotIn("\x1b", error)
        # the same file twice
        error, code, _, _ = raw_submit(sock, main, [("a.yaml", ""), ("a.yaml", "")])
        self.assertIn("imported file 'a.yaml' is sent twice", error)
        # the bytes of all files together, against --max-spec
        c.kill_droverd()
        c.start_droverd(extra=["--max-spec", "4Ki"])
        error, code, _, rid = raw_submit(sock, main, [("a.yaml", "#" * 3000 + "\n"),
                                                      ("b.yaml", "#" * 3000 + "\n")])
        self.assertEqual((code, rid), (API_ERROR_INVALID, ""), error)
        self.assertIn("the spec and the 2 files it imports are %d bytes together; the limit is "
                      "4096 (droverd's --max-spec)" % (len(main) + 6002), error)
        # through the CLI: the same message, exit 6
        root = c.path("sized")
        self.write_tree(root, {"main.yaml": "name: sized\nimports: [a.yaml, b.yaml]\n" + main[10:],
                               "a.yaml": "#" * 3000 + "\n", "b.yaml": "#" * 3000 + "\n"})
        r = c.cli("submit", os.path.join(root, "main.yaml"))
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("limit is 4096 (droverd's --max-spec)", r.err)
        self.assertEqual(self.run_ids(), [])
        st = c.cli_json("status")
        self.assertGreaterEqual(int(st["counters"]["over_limits"]), 2, st)
        self.assertTrue(c.droverd.alive())

    # ---- run get: the tree

    def test_run_get_lists_items_after_their_step_with_group_fields(self):
        c = self.c
        rid = c.submit("name: tree\nsteps:\n"
                       "  - {name: fan, for_each: [a, b], command: ['true']}\n"
                       "  - {name: after, needs: [fan], command: ['true']}\n")
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual([t["name"] for t in run["tasks"]], ["fan", "fan[0]", "fan[1]", "after"])
        for t in run["tasks"]:
            self.assertEqual((t["group"], t["depth"], t["is_group"], t["template"]),
                             (None, 0, False, None), t)
        r = c.cli("run", "get", rid)
        rows = [l.split()[0] for l in r.out.splitlines() if l.split() and
                l.split()[0] in ("fan", "fan[0]", "fan[1]", "after")]
        self.assertEqual(rows, ["fan", "fan[0]", "fan[1]", "after"], r.out)

    def test_group_members_indented_under_their_group(self):
        """A for_each over a DAG template lists each item's members after
        it, one level deeper, in body order."""
        c = self.c
        rid = c.submit("name: groups\n"
                       "templates:\n"
                       "  pair:\n"
                       "    inputs: {params: {x: null}}\n"
                       "    steps:\n"
                       "      - {name: a, command: ['echo', '{{inputs.params.x}}']}\n"
                       "      - {name: b, needs: [a], command: ['true']}\n"
                       "  one:\n"
                       "    command: ['true']\n"
                       "steps:\n"
                       "  - name: g\n"
                       "    uses: pair\n"
                       "    for_each: [p, q]\n"
                       "    with: {x: '{{item}}'}\n"
                       "  - {name: s, uses: one, needs: [g]}\n")
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        names = [t["name"] for t in run["tasks"]]
        self.assertEqual(names, ["g", "g[0]", "g[0].a", "g[0].b", "g[1]", "g[1].a", "g[1].b", "s"])
        self.assertEqual(task(run, "g")["is_group"], True)
        self.assertEqual(task(run, "g")["template"], "pair")
        self.assertEqual(task(run, "s")["template"], "one")
        self.assertEqual(task(run, "s")["is_group"], False)
        m = task(run, "g[1].b")
        self.assertEqual((m["group"], m["depth"]), ("g[1]", 1), m)
        self.assertEqual((task(run, "g[1]")["group"], task(run, "g[1]")["depth"]), (None, 0))
        r = c.cli("run", "get", rid)
        self.assertRegex(r.out, r"\n  g\[0\]\.a +SUCCEEDED")
        self.assertRegex(r.out, r"\ng\[0\] +SUCCEEDED")

    # ---- the command line around it

    def test_help_and_completion(self):
        c = self.c
        rid = c.submit("name: h\nsteps:\n  - {name: s, command: ['true']}\n")
        r = c.cli("run", "spec", "--help")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("drover run spec ID [-o DIR]", r.out)
        self.assertIn("# import: PATH", r.out)
        self.assertIn("run spec ID [-o DIR]", c.cli("--help").out)
        self.assertEqual(c.cli("run", "spec").rc, 2)

        def complete(*words):
            r = c.cli("__complete", *words)
            self.assertEqual(r.rc, 0, r)
            return r.out.split("\n")[:-1]

        self.assertEqual(complete("run", "sp"), ["spec"])
        self.assertEqual(complete("run", "spec", ""), [rid])
        self.assertEqual(complete("run", "spec", rid, "-o", ""), [":files"])


if __name__ == "__main__":
    harness.main()
