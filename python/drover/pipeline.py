"""Authoring pipelines in Python: Pipeline, steps, templates, references.

Design: a Pipeline is a builder of the very YAML a person writes (README
"Pipeline spec"); nothing here runs anything. `p.step(...)` records a step
and returns a StepHandle; a handle's references render as the spec's
templates and artifact sources:

    h.outputs["accuracy"]        -> "{{steps.train.outputs.params.accuracy}}"
    h.outputs["model"]           -> "train.model" (a declared artifact)
    h.result / h.status / h.exit_code -> "{{steps.train.outputs.result}}", ...
    p.params["rows"]             -> "{{params.rows}}"
    item, item["lr"]             -> "{{item}}", "{{item.lr}}"

References are plain strings (a Ref is a str), so they work in f-strings
too. Dependencies come from the text: every `{{steps.S...}}` and every
input artifact source `S.NAME` naming a step of the same scope makes S a
need, unless S is already reached through another need (so `needs:` stays
what a person would write); needs given explicitly are kept as given.
Exit handlers (`p.on_exit`) get no inferred needs (they may read any
step's outputs). Keys are emitted in one fixed order (the order of
examples/ml/pipeline.yaml), so the YAML is stable and diffable.

Invariants: step names are unique within a scope (a Pipeline or a DAG
template): a duplicate raises ValueError at once; a reference to an
undeclared param or output raises KeyError naming it; whatever else is
wrong (a bad duration, an unknown key) is left to droverd, which reports it
at FILE:LINE:COL of the emitted YAML.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Mapping, Sequence

from .yamlemit import Block, BlockList, dump

__all__ = [
    "Pipeline", "DagTemplate", "StepHandle", "TemplateHandle", "Ref", "item", "range_items",
]

# The order keys are written in, within a step (unknown keys go last in
# the order given).
STEP_KEYS = (
    "name", "needs", "depends", "trigger", "when", "for_each", "parallelism", "uses", "with",
    "suspend", "image", "resources", "placement", "retries", "timeout", "skip_on_exit_code",
    "checkpoint", "preemption", "cache", "continue_on", "inputs", "outputs", "env",
    "command", "script",
)
DOC_KEYS = ("name", "description", "parallelism", "timeout", "max_depth", "params", "defaults",
            "imports", "templates", "steps", "finally")

_STEP_REF_RE = re.compile(r"\{\{\s*steps\.(.+?)\.(?:outputs|status|exit_code)\b")


class Ref(str):
    """A reference to a value known at run time ("{{...}}") or to an
    artifact ("STEP.NAME"); a str, so it can be used anywhere text goes."""

    def __getitem__(self, key: Any) -> Any:  # item["lr"] -> {{item.lr}}
        if isinstance(key, str) and self.startswith("{{") and self.endswith("}}"):
            return Ref(self[:-2] + "." + key + "}}")
        return str.__getitem__(self, key)

    def __getattr__(self, key: str) -> "Ref":
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]


#: The current item of a for_each step: item -> {{item}}, item["k"] or
#: item.k -> {{item.k}}.
item = Ref("{{item}}")


def range_items(start: int, stop: int | None = None, step: int | None = None) -> dict:
    """A `for_each: {range: ...}` over integers, as Python's range()."""
    if stop is None:
        return {"range": start}
    if step is None:
        return {"range": [start, stop]}
    return {"range": [start, stop, step]}


class _Params:
    """p.params["x"] / p.params.x -> "{{params.x}}" (x must be declared)."""

    def __init__(self, names: Sequence[str], owner: str) -> None:
        self._names = list(names)
        self._owner = owner

    def __getitem__(self, key: str) -> Ref:
        if key not in self._names:
            raise KeyError("%s declares no param %r (declared: %s)"
                           % (self._owner, key, ", ".join(self._names) or "none"))
        return Ref("{{params.%s}}" % key)

    def __getattr__(self, key: str) -> Ref:
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __contains__(self, key: object) -> bool:
        return key in self._names


class _Outputs:
    """h.outputs["x"]: an artifact source when x is a declared artifact,
    else the output param's template; .params[...] / .artifacts[...] are
    explicit."""

    def __init__(self, h: "StepHandle") -> None:
        self._h = h

    def __getitem__(self, key: str) -> Ref:
        h = self._h
        if key in h.output_artifacts:
            return Ref("%s.%s" % (h.name, key))
        if key in h.output_params or h.outputs_unknown:
            return Ref("{{steps.%s.outputs.params.%s}}" % (h.name, key))
        raise KeyError("step %r declares no output %r (params: %s; artifacts: %s)"
                       % (h.name, key, ", ".join(h.output_params) or "none",
                          ", ".join(h.output_artifacts) or "none"))

    @property
    def params(self) -> Mapping[str, Ref]:
        h = self._h
        names = h.output_params if not h.outputs_unknown else None
        return _Lookup(lambda k: Ref("{{steps.%s.outputs.params.%s}}" % (h.name, k)), names,
                       "step %r output param" % h.name)

    @property
    def artifacts(self) -> Mapping[str, Ref]:
        h = self._h
        names = h.output_artifacts if not h.outputs_unknown else None
        return _Lookup(lambda k: Ref("%s.%s" % (h.name, k)), names,
                       "step %r output artifact" % h.name)


class _Lookup(Mapping):
    def __init__(self, make: Any, names: Sequence[str] | None, what: str) -> None:
        self._make, self._names, self._what = make, names, what

    def __getitem__(self, key: str) -> Ref:
        if self._names is not None and key not in self._names:
            raise KeyError("no %s %r (declared: %s)" % (self._what, key,
                                                         ", ".join(self._names) or "none"))
        return self._make(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names or [])

    def __len__(self) -> int:
        return len(self._names or [])


class StepHandle:
    """What Pipeline.step returns: the step's name and references to its
    outputs (which add the dependency to the step that uses them)."""

    def __init__(self, name: str, spec: dict, outputs_unknown: bool = False) -> None:
        self.name = name
        self.spec = spec
        o = spec.get("outputs") or {}
        self.output_params: list[str] = list(o.get("params") or [])
        a = o.get("artifacts") or []
        self.output_artifacts: list[str] = list(a.keys() if isinstance(a, dict) else a)
        self.outputs_unknown = outputs_unknown  # a `uses` step: the template declares them
        self.outputs = _Outputs(self)

    @property
    def result(self) -> Ref:
        """The step's standard output ({{steps.S.outputs.result}})."""
        return Ref("{{steps.%s.outputs.result}}" % self.name)

    @property
    def status(self) -> Ref:
        """{{steps.S.status}}: succeeded, failed, skipped, cached, cancelled."""
        return Ref("{{steps.%s.status}}" % self.name)

    @property
    def exit_code(self) -> Ref:
        """{{steps.S.exit_code}}: the last attempt's exit code."""
        return Ref("{{steps.%s.exit_code}}" % self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return "<step %s>" % self.name


class TemplateHandle:
    """A template (Pipeline.template / DagTemplate): pass it as uses=."""

    def __init__(self, name: str, body: dict) -> None:
        self.name = name
        self.body = body
        ins = body.get("inputs") or {}
        self.input_params = list((ins.get("params") or {}).keys())
        self.input_artifacts = list(ins.get("artifacts") or [])
        outs = body.get("outputs") or {}
        p = outs.get("params") or []
        a = outs.get("artifacts") or []
        self.output_params = list(p.keys() if isinstance(p, dict) else p)
        self.output_artifacts = list(a.keys() if isinstance(a, dict) else a)

    def __str__(self) -> str:
        return self.name


def _needs_names(needs: Any) -> list[str]:
    if needs is None:
        return []
    if isinstance(needs, (str, StepHandle)):
        needs = [needs]
    return [n.name if isinstance(n, StepHandle) else str(n) for n in needs]


def _strings(v: Any) -> Iterator[str]:
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _strings(x)


def _plain(v: Any) -> Any:
    """Refs and handles as plain str, tuples as lists, recursively."""
    if isinstance(v, (StepHandle, TemplateHandle)):
        return v.name
    if isinstance(v, str):
        return str(v)
    if isinstance(v, dict):
        return type(v)((str(k), _plain(x)) for k, x in v.items()) if isinstance(v, Block) \
            else {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class _Scope:
    """Steps with unique names and inferred needs: a Pipeline or a DAG
    template's body."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._steps: list[dict] = []
        self._finally: list[dict] = []
        self._handles: dict[str, StepHandle] = {}
        self._when: list[str] = []

    # ---- dependencies

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = [name]
        while todo:
            n = todo.pop()
            h = self._handles.get(n)
            if h is None:
                continue
            for d in h.spec.get("needs") or []:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    def _referenced(self, spec: dict) -> list[str]:
        """The steps of this scope that spec's templates and input
        artifact sources name, in order of first mention."""
        found: list[str] = []

        def add(n: str) -> None:
            if n in self._handles and n not in found:
                found.append(n)

        for key, v in spec.items():
            if key in ("name", "needs", "depends", "trigger"):
                continue
            if key == "inputs" and isinstance(v, dict):
                arts = v.get("artifacts") or {}
                if isinstance(arts, dict):
                    for src in arts.values():
                        if isinstance(src, str) and "." in src and "{{" not in src:
                            add(src.rsplit(".", 1)[0])
            for s in _strings(v):
                for m in _STEP_REF_RE.finditer(s):
                    add(m.group(1).strip())
        return found

    def _infer_needs(self, explicit: list[str], spec: dict) -> list[str]:
        refs = [n for n in self._referenced(spec) if n not in explicit]
        covered: set[str] = set(explicit)
        for n in explicit:
            covered |= self._ancestors(n)
        for n in refs:
            covered_by_other = any(n in self._ancestors(o) for o in refs if o != n)
            if n not in covered and not covered_by_other:
                explicit = explicit + [n]
        return explicit

    # ---- steps

    @contextlib.contextmanager
    def condition(self, expr: str) -> Iterator[None]:
        """Steps made inside `with p.condition(EXPR):` get `when: EXPR`
        (and'ed with an enclosing condition and their own when)
        — KFP's dsl.Condition / dsl.If."""
        self._when.append(str(expr))
        try:
            yield
        finally:
            self._when.pop()

    def step(self, name: str, *, needs: Any = None, depends: str | None = None,
             trigger: str | None = None, when: str | None = None, for_each: Any = None,
             parallelism: int | None = None, uses: Any = None,
             with_: Mapping[str, Any] | None = None, suspend: Any = None,
             image: str | None = None, resources: Mapping[str, Any] | None = None,
             placement: Mapping[str, Any] | None = None, retries: Any = None,
             timeout: str | None = None, skip_on_exit_code: Any = None,
             checkpoint: Mapping[str, Any] | None = None,
             preemption: Mapping[str, Any] | None = None, cache: bool | None = None,
             continue_on: str | None = None, inputs: Mapping[str, Any] | None = None,
             outputs: Mapping[str, Any] | None = None,
             output_params: Sequence[str] | None = None,
             output_artifacts: Sequence[str] | None = None,
             env: Mapping[str, Any] | None = None, command: Sequence[Any] | None = None,
             script: str | None = None, extra: Mapping[str, Any] | None = None,
             _final: bool = False) -> StepHandle:
        """Add a step; return its handle. Keyword names are the spec's keys
        (README "Pipeline spec"); `with_` is `with:`; `inputs` maps a local
        name to an artifact source (a handle's outputs["NAME"], "STEP.NAME"),
        or is the spec's own {artifacts: {...}}; `output_params` /
        `output_artifacts` declare `outputs:` (or give `outputs` as the
        spec writes it); `extra` adds keys this version does not know."""
        if not isinstance(name, str) or not name:
            raise ValueError("a step needs a non-empty name")
        if name in self._handles:
            raise ValueError("%s already has a step named %r" % (self._what, name))
        conds = list(self._when) + ([str(when)] if when is not None else [])
        if len(conds) > 1:
            when = " && ".join("(%s)" % c for c in conds)
        elif conds:
            when = conds[0]
        if inputs is not None and "artifacts" not in inputs and "params" not in inputs:
            inputs = {"artifacts": dict(inputs)}
        if outputs is None and (output_params or output_artifacts):
            outputs = {}
            if output_artifacts:
                outputs["artifacts"] = list(output_artifacts)
            if output_params:
                outputs["params"] = list(output_params)
        values = {
            "depends": depends, "trigger": trigger, "when": when, "for_each": for_each,
            "parallelism": parallelism, "uses": uses, "with": with_, "suspend": suspend,
            "image": image, "resources": resources, "placement": placement,
            "retries": retries, "timeout": timeout, "skip_on_exit_code": skip_on_exit_code,
            "checkpoint": checkpoint, "preemption": preemption, "cache": cache,
            "continue_on": continue_on, "inputs": inputs, "outputs": outputs, "env": env,
            "command": command, "script": script,
        }
        spec: dict = {k: _plain(v) for k, v in values.items() if v is not None}
        for k, v in (extra or {}).items():
            spec[str(k)] = _plain(v)
        explicit = _needs_names(needs)
        for n in explicit:
            if n not in self._handles and not _final:
                raise KeyError("step %r needs %r, which %s does not have (yet)"
                               % (name, n, self._what))
        need_list = explicit if _final else self._infer_needs(explicit, spec)
        doc = Block(name=name)
        if need_list:
            doc["needs"] = need_list
        order = {k: i for i, k in enumerate(STEP_KEYS)}
        for k in sorted(spec, key=lambda k: order.get(k, len(order))):
            doc[k] = spec[k]
        h = StepHandle(name, doc, outputs_unknown=uses is not None)
        if isinstance(uses, TemplateHandle) and "outputs" not in doc:
            h.output_params = list(uses.output_params)
            h.output_artifacts = list(uses.output_artifacts)
            h.outputs_unknown = False
        self._handles[name] = h
        (self._finally if _final else self._steps).append(doc)
        return h

    def on_exit(self, name: str, **keys: Any) -> StepHandle:
        """Add an exit handler (`finally:`): runs after everything else,
        whatever happened; same keywords as step()."""
        return self.step(name, _final=True, **keys)

    def steps_yaml(self) -> tuple[list, list]:
        return BlockList(self._steps), BlockList(self._finally)


class DagTemplate(_Scope):
    """A DAG template: steps of its own (add them with .step), inputs and
    outputs; a step that `uses` it becomes a group."""

    def __init__(self, name: str, params: Mapping[str, Any] | None = None,
                 artifacts: Sequence[str] | None = None) -> None:
        super().__init__("template %r" % name)
        self.name = name
        self._in_params = dict(params or {})
        self._in_artifacts = list(artifacts or [])
        self._out_params: dict[str, str] = {}
        self._out_artifacts: dict[str, str] = {}

    def input(self, name: str) -> Ref:
        """{{inputs.params.NAME}} (declared)."""
        if name not in self._in_params:
            raise KeyError("template %r declares no input param %r" % (self.name, name))
        return Ref("{{inputs.params.%s}}" % name)

    def input_artifact(self, name: str) -> Ref:
        """The source `inputs.artifacts.NAME` for a step inside."""
        if name not in self._in_artifacts:
            raise KeyError("template %r declares no input artifact %r" % (self.name, name))
        return Ref("inputs.artifacts.%s" % name)

    def output(self, name: str, value: Any) -> None:
        """Declare an output of the group: a param (a template string) or,
        for an artifact source ("STEP.NAME" / a step's artifact), an artifact."""
        v = str(value)
        if "{{" in v or value is None:
            self._out_params[name] = v
        else:
            self._out_artifacts[name] = v

    def body(self) -> Block:
        b = Block()
        ins: dict = {}
        if self._in_params:
            ins["params"] = {k: (None if v is None else _plain(v))
                             for k, v in self._in_params.items()}
        if self._in_artifacts:
            ins["artifacts"] = list(self._in_artifacts)
        if ins:
            b["inputs"] = ins
        steps, fin = self.steps_yaml()
        b["steps"] = steps
        if fin:
            b["finally"] = fin
        outs: dict = {}
        if self._out_params:
            outs["params"] = dict(self._out_params)
        if self._out_artifacts:
            outs["artifacts"] = dict(self._out_artifacts)
        if outs:
            b["outputs"] = outs
        return b


class Pipeline(_Scope):
    """A pipeline: name, params (strings; overridable at submit), defaults
    (any step key), optional run parallelism/timeout, steps, exit handlers
    and templates. to_yaml() gives the spec."""

    def __init__(self, name: str, params: Mapping[str, Any] | None = None,
                 defaults: Mapping[str, Any] | None = None, parallelism: int | None = None,
                 timeout: str | None = None, description: str | None = None,
                 imports: Sequence[Any] | None = None, max_depth: int | None = None) -> None:
        super().__init__("pipeline %r" % name)
        self.name = name
        self._params: dict[str, str] = {str(k): ("" if v is None else str(v))
                                        for k, v in (params or {}).items()}
        self.params = _Params(list(self._params), "pipeline %r" % name)
        self.defaults = dict(defaults or {})
        self.parallelism = parallelism
        self.timeout = timeout
        self.description = description
        self.imports = list(imports or [])
        self.max_depth = max_depth
        self._templates: dict[str, Any] = {}

    def template(self, name: str, *, params: Mapping[str, Any] | None = None,
                 artifacts: Sequence[str] | None = None, **keys: Any) -> TemplateHandle:
        """Add a step template (inputs: params {name: default, None =
        required}, artifacts [names]; other keywords as step()'s: command,
        script, outputs, retries, ...). Inside, refer to a param with
        Pipeline.input("NAME") -> {{inputs.params.NAME}}."""
        if name in self._templates:
            raise ValueError("pipeline %r already has a template named %r" % (self.name, name))
        body = Block()
        ins: dict = {}
        if params:
            ins["params"] = {k: (None if v is None else _plain(v)) for k, v in params.items()}
        if artifacts:
            ins["artifacts"] = list(artifacts)
        if ins:
            body["inputs"] = ins
        if "output_params" in keys or "output_artifacts" in keys:
            o: dict = {}
            if keys.get("output_artifacts"):
                o["artifacts"] = list(keys.pop("output_artifacts"))
            if keys.get("output_params"):
                o["params"] = list(keys.pop("output_params"))
            keys.pop("output_artifacts", None)
            keys.pop("output_params", None)
            keys.setdefault("outputs", o)
        order = {k: i for i, k in enumerate(STEP_KEYS)}
        for k in sorted(keys, key=lambda k: order.get(k, len(order))):
            if keys[k] is not None:
                body[k] = _plain(keys[k])
        self._templates[name] = body
        return TemplateHandle(name, body)

    def dag_template(self, t: DagTemplate) -> TemplateHandle:
        """Add a DAG template built with DagTemplate; return its handle."""
        if t.name in self._templates:
            raise ValueError("pipeline %r already has a template named %r" % (self.name, t.name))
        self._templates[t.name] = t
        return TemplateHandle(t.name, t.body())

    @staticmethod
    def input(name: str) -> Ref:
        """{{inputs.params.NAME}}, inside a step template."""
        return Ref("{{inputs.params.%s}}" % name)

    def to_dict(self) -> dict:
        """The spec as dicts and lists (Block marks what is block style)."""
        doc = Block(name=self.name)
        if self.description is not None:
            doc["description"] = self.description
        if self.parallelism is not None:
            doc["parallelism"] = self.parallelism
        if self.timeout is not None:
            doc["timeout"] = self.timeout
        if self.max_depth is not None:
            doc["max_depth"] = self.max_depth
        if self._params:
            doc["params"] = Block(self._params)
        if self.defaults:
            doc["defaults"] = Block({k: _plain(v) for k, v in self.defaults.items()})
        if self.imports:
            doc["imports"] = _plain(self.imports)
        if self._templates:
            doc["templates"] = Block({k: (v.body() if isinstance(v, DagTemplate) else v)
                                      for k, v in self._templates.items()})
        steps, fin = self.steps_yaml()
        doc["steps"] = steps
        if fin:
            doc["finally"] = fin
        return doc

    def to_yaml(self) -> str:
        """The spec as block YAML (what `drover submit` takes)."""
        return dump(self.to_dict())

    def save(self, path: str) -> str:
        """Write to_yaml() to path; return path."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_yaml())
        return path
