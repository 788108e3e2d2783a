"""Pipeline steps stored per app in ``pipeline.toml``: the model, validation and staleness.

A step runs Python code in its own process. Its ``source`` says where the code
came from: ``gen:<kind>`` (a snippet generated from the app's settings, which
records the ``[args]`` it was generated with), ``file:<path>`` (an imported
snippet file) or ``inline`` (typed by the operator). Steps form a DAG through
``depends_on``; ``fallback`` names a step run instead when a step finally fails.

The file is written with tomlkit (code as multi-line strings), atomically, and
only after the pipeline validated, so a bad edit never loses the saved one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomlkit

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.workspace import atomic_write_text

SCHEMA_VERSION = 1
PYTHONS = ("workbench", "app")
FILE_NAME = "pipeline.toml"
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class PipelineError(SwitchyardError):
    """A pipeline (or one of its steps) is invalid; the message names the step ids."""

    category = "pipeline"


@dataclass
class Step:
    """One step of a pipeline."""

    id: str
    code: str = ""
    title: str = ""
    source: str = "inline"  # gen:<kind>, file:<path> or inline
    depends_on: list[str] = field(default_factory=list)
    retries: int = 0
    retry_delay: float = 1.0  # backoff base: attempt n waits retry_delay * 2**(n-1)
    timeout: float = 600.0
    fallback: str | None = None
    enabled: bool = True
    kind: str = ""  # circuit breaker group; default: the source kind
    generated_args: dict[str, Any] | None = None  # gen steps: the [args] they were made with

    def __post_init__(self) -> None:
        if self.code and not self.code.endswith("\n"):
            self.code += "\n"

    @property
    def breaker_kind(self) -> str:
        """The circuit breaker group of this step: ``kind``, else ``gen:run``/``file``/``inline``."""
        if self.kind:
            return self.kind
        return self.source if self.source.startswith("gen:") else self.source.split(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "step") -> "Step":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PipelineError(f"{where}: unknown key '{unknown[0]}': use one of {', '.join(sorted(known))}")
        if "id" not in d:
            raise PipelineError(f"{where}: missing 'id': give every step a short id such as 'report'")
        d = dict(d)
        try:
            d["depends_on"] = [str(x) for x in d.get("depends_on") or []]
            d["retries"] = int(d.get("retries", 0))
            d["retry_delay"] = float(d.get("retry_delay", 1.0))
            d["timeout"] = float(d.get("timeout", 600.0))
            d["enabled"] = bool(d.get("enabled", True))
        except (TypeError, ValueError) as e:
            raise PipelineError(f"{where} '{d['id']}': {e}: retries is a whole number, "
                                "retry_delay and timeout are seconds") from None
        if d.get("generated_args") is not None:
            d["generated_args"] = _plain(d["generated_args"])
        return cls(**{k: _plain(v) for k, v in d.items()})


@dataclass
class BreakerConfig:
    """Circuit breaker settings: ``threshold`` consecutive failures within ``window`` seconds
    open it; it lets one trial through after ``cooldown`` seconds."""

    threshold: int = 3
    window: float = 300.0
    cooldown: float = 60.0


@dataclass
class Pipeline:
    """The steps of one app's pipeline, in the operator's order."""

    steps: list[Step] = field(default_factory=list)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    workers: int = 2  # local Dask workers when the pipeline starts its own cluster
    # Which python runs the steps: "workbench" (the one that starts the run: generated and
    # imported snippets call AGI, whose manager side needs the workbench's dependencies) or
    # "app" (the app's worker environment, for steps that only need the app's packages).
    python: str = "workbench"
    schema: int = SCHEMA_VERSION

    def step(self, sid: str) -> Step:
        for s in self.steps:
            if s.id == sid:
                return s
        raise PipelineError(f"no step '{sid}' in the pipeline: choose one of "
                            f"{', '.join(s.id for s in self.steps) or '(none)'}")

    def ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def fallback_ids(self) -> set[str]:
        """Steps that run only as another step's fallback."""
        return {s.fallback for s in self.steps if s.fallback}

    def entry_points(self) -> list[str]:
        """Steps with no dependencies (fallbacks excluded)."""
        fb = self.fallback_ids()
        return [s.id for s in self.steps if not s.depends_on and s.id not in fb]

    def finish_points(self) -> list[str]:
        """Steps nothing depends on (fallbacks excluded)."""
        needed = {d for s in self.steps for d in s.depends_on}
        fb = self.fallback_ids()
        return [s.id for s in self.steps if s.id not in needed and s.id not in fb]

    def order(self) -> list[str]:
        """Step ids in a dependency order (stable: the operator's order where free)."""
        validate(self)
        done: list[str] = []
        left = list(self.steps)
        while left:
            for s in left:
                if all(d in done for d in s.depends_on):
                    done.append(s.id)
                    left.remove(s)
                    break
        return done

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "workers": self.workers, "python": self.python,
                "breaker": asdict(self.breaker),
                "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Pipeline":
        steps = [Step.from_dict(x, f"step {i + 1}") for i, x in enumerate(d.get("steps") or [])]
        b = d.get("breaker") or {}
        try:
            breaker = BreakerConfig(threshold=int(b.get("threshold", 3)), window=float(b.get("window", 300)),
                                    cooldown=float(b.get("cooldown", 60)))
            workers = int(d.get("workers", 2))
        except (TypeError, ValueError) as e:
            raise PipelineError(f"[breaker]/workers: {e}: threshold and workers are whole numbers, "
                                "window and cooldown are seconds") from None
        return cls(steps=steps, breaker=breaker, workers=workers, python=str(d.get("python", "workbench")),
                   schema=int(d.get("schema", SCHEMA_VERSION)))


def _plain(value: Any) -> Any:
    """tomlkit items -> plain Python values."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


# -- validation -------------------------------------------------------------------------------

def syntax_error(code: str) -> tuple[int, str] | None:
    """(line, message) of the first syntax error in ``code``, or None when it compiles."""
    try:
        compile(code, "<step>", "exec")
    except SyntaxError as e:
        return (e.lineno or 0, e.msg)
    return None


def find_cycle(steps: list[Step]) -> list[str] | None:
    """A dependency cycle as a list of ids (first id repeated at the end), or None."""
    deps = {s.id: [d for d in s.depends_on] for s in steps}
    color: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = 1
        path.append(n)
        for d in deps.get(n, []):
            if d not in deps:
                continue
            if color.get(d) == 1:
                return path[path.index(d):] + [d]
            if color.get(d) is None:
                found = visit(d)
                if found:
                    return found
        path.pop()
        color[n] = 2
        return None

    for s in steps:
        if color.get(s.id) is None:
            found = visit(s.id)
            if found:
                return list(reversed(found))
    return None


def problems(p: Pipeline) -> list[str]:
    """Every problem of the pipeline, each naming the step ids involved (empty when valid)."""
    out = []
    if p.schema > SCHEMA_VERSION:
        out.append(f"schema {p.schema} is newer than this Switchyard's ({SCHEMA_VERSION}): upgrade Switchyard")
    seen: set[str] = set()
    dupes = []
    for s in p.steps:
        if not isinstance(s.id, str) or not _ID.match(s.id):
            out.append(f"step id {s.id!r} is not valid: use letters, digits, '_' or '-' (starting with a letter)")
        if s.id in seen and s.id not in dupes:
            dupes.append(s.id)
        seen.add(s.id)
    if dupes:
        out.append(f"duplicate step ids: {', '.join(dupes)}: give each step its own id")
    for s in p.steps:
        unknown = [d for d in s.depends_on if d not in seen]
        if unknown:
            out.append(f"step '{s.id}' depends on unknown step ids: {', '.join(unknown)}")
        if s.id in s.depends_on:
            out.append(f"step '{s.id}' depends on itself")
        if s.fallback is not None:
            if s.fallback not in seen:
                out.append(f"step '{s.id}' has unknown fallback step '{s.fallback}'")
            elif s.fallback == s.id:
                out.append(f"step '{s.id}' is its own fallback")
        if s.retries < 0 or s.retry_delay < 0 or s.timeout <= 0:
            out.append(f"step '{s.id}': retries and retry_delay must be >= 0 and timeout > 0")
        if not s.source.startswith(("gen:", "file:")) and s.source != "inline":
            out.append(f"step '{s.id}': source {s.source!r} must be gen:<kind>, file:<path> or inline")
        err = syntax_error(s.code)
        if err:
            out.append(f"step '{s.id}': syntax error at line {err[0]}: {err[1]}")
    cycle = find_cycle([s for s in p.steps if s.id not in dupes]) if not dupes else None
    if cycle:
        out.append(f"dependency cycle: {' -> '.join(cycle)}: remove one of these depends_on")
    if p.breaker.threshold < 1 or p.breaker.window <= 0 or p.breaker.cooldown < 0:
        out.append("[breaker]: threshold must be >= 1, window > 0 and cooldown >= 0")
    if p.python not in PYTHONS:
        out.append(f"python = {p.python!r}: use one of {', '.join(PYTHONS)}")
    if p.workers < 1:
        out.append(f"workers = {p.workers}: give at least 1")
    return out


def validate(p: Pipeline) -> None:
    """Raise PipelineError naming the first problem (and how many more there are)."""
    found = problems(p)
    if found:
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        raise PipelineError(found[0] + more)


# -- TOML ------------------------------------------------------------------------------------

def loads(text: str, where: str = FILE_NAME) -> Pipeline:
    """Parse a pipeline document (not validated: see :func:`validate`)."""
    try:
        doc = tomlkit.parse(text)
    except Exception as e:
        raise PipelineError(f"{where}: not valid TOML ({e}): fix the file or remove it") from None
    d = _plain(doc)
    return Pipeline.from_dict({"schema": d.get("schema", SCHEMA_VERSION), "workers": d.get("workers", 2),
                               "python": d.get("python", "workbench"),
                               "breaker": d.get("breaker"), "steps": d.get("step") or []})


def dumps(p: Pipeline) -> str:
    """The TOML text of a pipeline (code as multi-line literal strings where possible)."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Pipeline of steps, edited by the Switchyard Pipeline page (tomlkit)."))
    doc.add("schema", p.schema)
    doc.add("workers", p.workers)
    doc.add("python", p.python)
    b = tomlkit.table()
    for k, v in asdict(p.breaker).items():
        b.add(k, v)
    doc.add("breaker", b)
    aot = tomlkit.aot()
    for s in p.steps:
        t = tomlkit.table()
        t.add("id", s.id)
        if s.title:
            t.add("title", s.title)
        t.add("source", s.source)
        if s.kind:
            t.add("kind", s.kind)
        t.add("depends_on", list(s.depends_on))
        t.add("retries", s.retries)
        t.add("retry_delay", s.retry_delay)
        t.add("timeout", s.timeout)
        if s.fallback:
            t.add("fallback", s.fallback)
        t.add("enabled", s.enabled)
        if s.generated_args is not None:
            ga = tomlkit.inline_table()
            ga.update(s.generated_args)
            t.add("generated_args", ga)
        literal = "'''" not in s.code and all(c in "\n\t" or ord(c) >= 32 for c in s.code)
        t.add("code", _code_item(s.code, literal))
        aot.append(t)
    doc.add("step", aot)
    return tomlkit.dumps(doc)


def _code_item(code: str, literal: bool) -> Any:
    """A multi-line string whose text starts on the line after the quotes (TOML drops that
    first newline when reading), so the file reads like the code."""
    from tomlkit.items import String, Trivia

    item = tomlkit.string(code, multiline=True, literal=literal)
    raw = item._original
    return item if raw.startswith("\n") else String(item.type, code, "\n" + raw, Trivia())


def pipeline_path(app_env: AppEnv) -> Path:
    return app_env.app_dir / FILE_NAME


def load(app_env: AppEnv) -> Pipeline:
    """The app's pipeline (an empty one when it has no ``pipeline.toml``)."""
    path = pipeline_path(app_env)
    if not path.is_file():
        return Pipeline()
    return loads(path.read_text(encoding="utf-8"), str(path))


def save(app_env: AppEnv, p: Pipeline) -> Path:
    """Validate and write ``pipeline.toml`` atomically; an invalid pipeline is not written."""
    validate(p)
    text = dumps(p)
    validate(loads(text))  # never write what we could not read back
    return atomic_write_text(pipeline_path(app_env), text)


# -- making steps ----------------------------------------------------------------------------

def current_args(app_env: AppEnv) -> dict[str, Any]:
    from switchyard.settings import load_settings

    return dict(load_settings(app_env.settings_path).args)


def generated_step(app_env: AppEnv, sid: str, kind: str = "run", **extra: Any) -> Step:
    """A step whose code is the ``kind`` snippet generated from the app's current settings."""
    from switchyard import snippets

    code = snippets.render_from_settings(kind, app_env)
    return Step(id=sid, code=code, source=f"gen:{kind}", title=extra.pop("title", f"generated {kind}"),
                generated_args=current_args(app_env), **extra)


def imported_step(path: Path | str, sid: str, **extra: Any) -> Step:
    """A step whose code is the snippet file ``path`` (e.g. a saved ``AGI_run.py``)."""
    path = Path(path)
    try:
        code = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"cannot import snippet {path}: {e}: check the file") from None
    return Step(id=sid, code=code, source=f"file:{path}", title=extra.pop("title", path.name), **extra)


def snippet_files(app_env: AppEnv) -> list[Path]:
    """Saved snippet files of the app (``<workspace>/snippets/<app>/*.py``), newest first."""
    folder = app_env.home / "snippets" / app_env.app
    files = [p for p in folder.glob("*.py") if p.is_file()] if folder.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def stale_keys(step: Step, args: dict[str, Any]) -> list[str]:
    """The ``[args]`` keys that differ from those the generated step was made with (sorted)."""
    if not step.source.startswith("gen:") or step.generated_args is None:
        return []
    old = step.generated_args
    return sorted(k for k in set(old) | set(args) if old.get(k, _MISSING) != args.get(k, _MISSING))


_MISSING = object()


def stale_steps(p: Pipeline, args: dict[str, Any]) -> dict[str, list[str]]:
    """Step id -> differing ``[args]`` keys, for every stale generated step."""
    return {s.id: keys for s in p.steps if (keys := stale_keys(s, args))}


def regenerate(app_env: AppEnv, step: Step) -> Step:
    """The generated step again from the current settings (clears its staleness)."""
    if not step.source.startswith("gen:"):
        raise PipelineError(f"step '{step.id}' is not generated (source {step.source}): only gen: steps "
                            "can be regenerated")
    fresh = generated_step(app_env, step.id, step.source.split(":", 1)[1])
    return replace(step, code=fresh.code, generated_args=fresh.generated_args)


def stale_message(stale: dict[str, list[str]]) -> str:
    return "; ".join(f"step '{sid}' is stale: [args] changed since it was generated: {', '.join(keys)}"
                     for sid, keys in stale.items())
