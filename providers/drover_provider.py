"""drover_provider: what every drover provider shares (python3 standard
library only; installed next to the providers in /usr/lib/drover/providers,
which import it from their own directory).

The protocol (README "Providers"): `PROVIDER VERB [ARGS...]`, VERB one of
create, delete, list; ARGS are the pool's `provider.args`. One JSON object
on stdin, one JSON object on stdout and exit 0; on failure a one-line
message on stderr and a non-zero exit (2: the request or the arguments are
wrong, 1: the work failed). Every verb is idempotent by node name: a create
of a name that exists returns that node, a delete of a name that is gone
counts it as deleted. DROVER_PROVIDER_TIMEOUT (seconds) bounds the whole
invocation, child processes included.

Invariants kept here: a request is validated completely before anything is
done (names: 1-63 of [A-Za-z0-9._-], first alphanumeric, unique), the reply
is written only once the work is done, and nothing but the reply is ever
written to stdout.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

VERBS = ("create", "delete", "list")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9._/-]{1,63}$")
HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "cloud-init.yaml.in")


class ProviderError(Exception):
    """A failure reported on stderr; code 2 for a bad request, 1 else."""

    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


def bad(msg):
    return ProviderError(msg, 2)


class ArgParser(argparse.ArgumentParser):
    """argparse that fails with one line (ProviderError), not usage text."""

    def error(self, message):
        raise bad("bad provider.args: %s" % message)


def _check_name(what, v):
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise bad("%s %s: must be 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter "
                  "or digit" % (what, json.dumps(v)))
    return v


def _names(req, allow_empty):
    names = req.get("names")
    if not isinstance(names, list) or (not names and not allow_empty):
        raise bad("\"names\": a %slist of node names is required" % ("" if allow_empty else "non-empty "))
    seen = set()
    for n in names:
        _check_name("node name", n)
        if n in seen:
            raise bad("node name %s appears twice in \"names\"" % json.dumps(n))
        seen.add(n)
    return names


def _number(what, v, integer=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (integer and v != int(v)):
        raise bad("%s: must be a %snumber >= 0, not %s" % (what, "whole " if integer else "",
                                                            json.dumps(v)))
    return v


def validate(verb, req):
    """Check the request of verb; return it with defaults filled in.
    Raises ProviderError (code 2) naming the first wrong field."""
    if not isinstance(req, dict):
        raise bad("the request must be a JSON object")
    _check_name("pool", req.get("pool"))
    if verb == "list":
        return req
    names = _names(req, allow_empty=(verb == "delete"))
    if verb == "delete":
        return req
    node = req.get("node", {})
    if not isinstance(node, dict):
        raise bad("\"node\" must be an object")
    if "cpu" in node:
        _number("node.cpu", node["cpu"])
    if "gpu" in node:
        _number("node.gpu", node["gpu"], integer=True)
    if "memory" in node and not (isinstance(node["memory"], str) and
                                 re.match(r"^[0-9]+(\.[0-9]+)?([KMGTP]i?)?$", node["memory"])):
        if not (isinstance(node["memory"], int) and not isinstance(node["memory"], bool)
                and node["memory"] >= 0):
            raise bad("node.memory: a size such as \"60Gi\", not %s" % json.dumps(node["memory"]))
    labels = node.get("labels", {})
    if not isinstance(labels, dict):
        raise bad("node.labels must be an object of strings")
    for k, v in labels.items():
        if not LABEL_KEY_RE.match(k) or not isinstance(v, str) or len(v) > 255 or "," in v \
                or "=" in v or "\n" in v:
            raise bad("node.labels: bad label %s=%s" % (json.dumps(k), json.dumps(v)))
    if not isinstance(req.get("spot", False), bool):
        raise bad("\"spot\" must be true or false")
    if "price" in req:
        _number("price", req["price"])
    tokens = req.get("join_tokens", {})
    if not isinstance(tokens, dict):
        raise bad("\"join_tokens\" must be an object: node name -> token")
    for k, v in tokens.items():
        if k not in names:
            raise bad("join_tokens: %s is not one of \"names\"" % json.dumps(k))
        if not isinstance(v, str) or not v or any(c.isspace() for c in v):
            raise bad("join_tokens.%s: must be a token string" % k)
    sched = req.get("scheduler")
    if not isinstance(sched, dict) or not isinstance(sched.get("endpoint"), str) \
            or not re.match(r"^(tcp|ipc)://\S+$", sched["endpoint"]):
        raise bad("\"scheduler\": {\"endpoint\": \"tcp://HOST:PORT\", \"public_key\": ...} "
                  "is required")
    pk = sched.get("public_key", "")
    if pk is None:
        pk = ""
    if not isinstance(pk, str) or (pk and not re.match(r"^[0-9A-Za-z.:+=^!/*?&<>()\[\]{}@%$#-]{40}$",
                                                       pk)):
        raise bad("scheduler.public_key: droverd's public key, 40 Z85 characters")
    sched["public_key"] = pk
    if not isinstance(req.get("user_data", ""), str):
        raise bad("\"user_data\" must be a string")
    return req


# ------------------------------------------------------------ user-data


def _yaml_str(s):
    return json.dumps(str(s))  # a JSON string is a YAML double-quoted scalar


def agent_settings(req, name, extra=()):
    """The agent.yaml lines (key: value) of node `name` of a create request."""
    node = req.get("node", {})
    sched = req["scheduler"]
    out = [("scheduler", sched["endpoint"]), ("name", name)]
    if "cpu" in node:
        out.append(("cpus", "%g" % node["cpu"]))
    if "memory" in node:
        out.append(("memory", str(node["memory"])))
    if "gpu" in node:
        out.append(("gpus", "%d" % node["gpu"]))
    labels = node.get("labels", {})
    if labels:
        out.append(("labels", ",".join("%s=%s" % kv for kv in sorted(labels.items()))))
    if "spot" in req:
        out.append(("spot", "true" if req["spot"] else "false"))
    if "price" in req:
        out.append(("price", "%g" % req["price"]))
    out.extend(extra)
    token = req.get("join_tokens", {}).get(name)
    if token:
        out.append(("join-token", token))
    return out


def yaml_lines(settings):
    return "".join("%s: %s\n" % (k, _yaml_str(v)) for k, v in settings)


def server_key_file(public_key):
    """droverd's public key in the format of `drover keygen`'s NAME.key."""
    return ("#   drover public key of droverd (the scheduler): the agents' scheduler-key\n"
            "metadata\n    name = \"droverd\"\ncurve\n    public-key = \"%s\"\n" % public_key)


def _indent(text, n):
    pad = " " * n
    return "".join(pad + line + "\n" for line in text.splitlines())


def render_user_data(req, name, provider, template=None, metadata=None):
    """Cloud-init user-data of node `name`: req["user_data"] when not empty,
    else the template file (default providers/cloud-init.yaml.in), with
    @NODE_NAME@, @POOL@, @PROVIDER@, @AGENT_YAML@ and @SERVER_KEY_FILE@
    substituted (one pass: values are not scanned again)."""
    text = req.get("user_data") or ""
    if not text:
        path = template or TEMPLATE
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise ProviderError("user-data template %s: %s" % (path, e.strerror))
    extra = []
    pk = req["scheduler"]["public_key"]
    if pk:
        extra.append(("scheduler-key", "/etc/drover/keys/droverd.key"))
    if metadata:
        extra.append((metadata, "on"))
    values = {
        "NODE_NAME": name,
        "POOL": req["pool"],
        "PROVIDER": provider,
        "AGENT_YAML": _indent(yaml_lines(agent_settings(req, name, extra)), 6).rstrip("\n"),
        "SERVER_KEY_FILE": _indent(server_key_file(pk) if pk else
                                   "# no server key: droverd runs with CURVE off\n", 6).rstrip("\n"),
    }
    return re.sub(r"@([A-Z_]+)@", lambda m: values.get(m.group(1), m.group(0)), text)


class TempFile:
    """A 0600 temporary file holding text, removed on exit of the with."""

    def __init__(self, text, suffix=".yaml"):
        fd, self.path = tempfile.mkstemp(prefix="drover-provider-", suffix=suffix)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except OSError:
            pass


# ------------------------------------------------------------ running CLIs

_deadline = None


def time_left():
    return None if _deadline is None else max(0.1, _deadline - time.monotonic())


def run_cli(argv, what=None, want_json=True):
    """Run a cloud CLI; return its parsed JSON stdout (None when empty).
    Its failure becomes a ProviderError naming the command and carrying
    the last line of its stderr (the CLIs put the cause there)."""
    what = what or " ".join(argv[:3])
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=time_left())
    except FileNotFoundError:
        raise ProviderError("%s: command not found (install it or give its path in "
                            "provider.args)" % argv[0])
    except subprocess.TimeoutExpired:
        raise ProviderError("%s: timed out (DROVER_PROVIDER_TIMEOUT)" % what)
    if p.returncode != 0:
        lines = [ln.strip() for ln in p.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise ProviderError("%s failed (exit %d): %s" % (what, p.returncode,
                                                          lines[-1] if lines else "no message"))
    out = p.stdout.decode(errors="replace").strip()
    if not want_json or not out:
        return None
    try:
        return json.loads(out)
    except ValueError:
        raise ProviderError("%s printed output that is not JSON: %.200s" % (what, out))


# ------------------------------------------------------------ main


def _on_alarm(signum, frame):
    raise ProviderError("timed out after DROVER_PROVIDER_TIMEOUT=%s seconds"
                        % os.environ.get("DROVER_PROVIDER_TIMEOUT"))


def main(prog, parser, handlers):
    """Run a provider: argv[1] is the verb, the rest parsed by parser
    (an ArgParser); handlers maps each verb to fn(request, args) -> reply.
    Never returns."""
    global _deadline
    try:
        if len(sys.argv) < 2 or sys.argv[1] not in VERBS:
            raise bad("usage: %s create|delete|list [PROVIDER ARGS...] < request.json (verb %s)"
                      % (prog, "missing" if len(sys.argv) < 2 else
                         "%s unknown" % json.dumps(sys.argv[1])))
        verb = sys.argv[1]
        tmo = os.environ.get("DROVER_PROVIDER_TIMEOUT")
        if tmo:
            try:
                secs = float(tmo)
                if not secs > 0:
                    raise ValueError
            except ValueError:
                raise bad("DROVER_PROVIDER_TIMEOUT=%s: seconds > 0 expected" % tmo)
            _deadline = time.monotonic() + secs
            signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, secs)
        args = parser.parse_args(sys.argv[2:])
        raw = sys.stdin.read()
        try:
            req = json.loads(raw)
        except ValueError as e:
            raise bad("the request on stdin is not JSON: %s" % e)
        req = validate(verb, req)
        reply = handlers[verb](req, args)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except ProviderError as e:
        sys.stderr.write("%s: %s\n" % (prog, str(e).replace("\n", " ")))
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % prog)
        sys.exit(1)
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    sys.exit(0)
