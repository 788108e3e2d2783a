"""App args: a form generated from the app's typed args model, or the app's own ``app_args_form.py``.

A custom form is a module in the app folder defining
``args_form(args: dict, model: type[Args]) -> dict | None``: it draws its widgets
and returns the new args when the operator saves (None otherwise). Either way
the values are validated by the app's model, errors are shown per field, and
only the changed keys are written to ``[args]`` (tomlkit keeps the comments).
"""

from __future__ import annotations

import enum
import importlib.util
import json
import types
import typing
from pathlib import Path
from typing import Any

import streamlit as st
from pydantic import BaseModel, ValidationError

from switchyard.app import AppEnv, validate_args
from switchyard.exceptions import ArgsError, SwitchyardError
from switchyard.settings import AppSettings, update_args
from switchyard.ui.common import file_mtime, show_app_failure, show_error

CUSTOM_FORM = "app_args_form.py"
SAFE_INT = 2**53 - 1  # larger ints do not survive the browser's number widgets


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1 and len(inner) < len(typing.get_args(annotation)):
            return inner[0], True
    return annotation, False


def widget_kind(annotation: Any) -> str:
    """Which widget a field gets: bool, int, float, choice, text or json."""
    annotation, _ = _unwrap_optional(annotation)
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if typing.get_origin(annotation) is typing.Literal:
        return "choice"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice"
    if annotation in (str, Path) or (isinstance(annotation, type) and issubclass(annotation, (str, Path))):
        return "text"
    return "json"


def choices(annotation: Any) -> list[Any]:
    annotation, _ = _unwrap_optional(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [m.value for m in annotation]


def constraints(field: Any) -> str:
    """The field's bounds, e.g. ``≥ 1, ≤ 100000``."""
    words = []
    for m in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length"),
                           ("max_length", "max length")):
            value = getattr(m, attr, None)
            if value is not None:
                words.append(f"{sign} {value}")
    return ", ".join(words)


def field_errors(model: type[BaseModel], raw: dict[str, Any]) -> dict[str, str]:
    """Field name -> what is wrong with its value (empty when the values are valid)."""
    errors: dict[str, str] = {}
    try:
        model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            name = ".".join(str(x) for x in err.get("loc", ())) or "?"
            errors.setdefault(name.split(".")[0], f"{err.get('input')!r}: {err.get('msg', 'invalid')}")
    return errors


def parse_json_fields(model: type[BaseModel], raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Decode the values typed as JSON text (lists, dicts, ...); errors per field."""
    out, errors = dict(raw), {}
    for name, field in model.model_fields.items():
        if name in raw and widget_kind(field.annotation) == "json" and isinstance(raw[name], str):
            text = raw[name].strip()
            try:
                out[name] = json.loads(text) if text else None
            except ValueError as e:
                errors[name] = f"not valid JSON ({e.msg} at column {e.colno}): write e.g. [1, 2] or {{\"a\": 1}}"
    return out, errors


def changed(current: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keys of ``new`` whose value differs from ``current``; a key missing there counts as
    changed unless its value is its default in ``defaults`` (an arg left out of [args] stays out)."""
    defaults = defaults or {}
    return {k: v for k, v in new.items()
            if (current[k] != v if k in current else (k not in defaults or defaults[k] != v))}


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    return {n: f.get_default(call_default_factory=True) for n, f in model.model_fields.items()
            if not f.is_required()}


def _initial(field: Any, current: dict[str, Any], name: str) -> Any:
    if name in current:
        return current[name]
    return None if field.is_required() else field.get_default(call_default_factory=True)


def _widget(name: str, field: Any, value: Any, key: str) -> Any:
    kind = widget_kind(field.annotation)
    label = name
    help_text = field.description
    if kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help_text)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool) and abs(value) <= SAFE_INT:
        return st.number_input(label, value=value, step=1, format="%d", key=key, help=help_text)
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return st.number_input(label, value=float(value), key=key, help=help_text)
    if kind == "choice":
        options = choices(field.annotation)
        index = options.index(value) if value in options else 0
        return st.selectbox(label, options, index=index, key=key, help=help_text)
    if kind == "json":
        return st.text_input(label, value="" if value is None else json.dumps(value), key=key, help=help_text)
    # text, and ints/floats whose current value the number widget cannot hold: typed as text
    text = st.text_input(label, value="" if value is None else str(value), key=key, help=help_text)
    return text


def generated_form(model: type[BaseModel], current: dict[str, Any], key: str) -> dict[str, Any] | None:
    """One widget per field, errors under each; the validated args on a valid save, else None."""
    holes: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    with st.form(key=key, border=False):
        cols = st.columns(2)
        for i, (name, field) in enumerate(model.model_fields.items()):
            with cols[i % 2]:
                raw[name] = _widget(name, field, _initial(field, current, name), f"{key}-{name}")
                bounds = constraints(field)
                if bounds:
                    st.caption(f"allowed: {bounds}")
                holes[name] = st.empty()
        submitted = st.form_submit_button("Save args", type="primary")
    if not submitted:
        return None
    values, errors = parse_json_fields(model, raw)
    errors = {**field_errors(model, values), **errors}
    for name, message in errors.items():
        (holes.get(name) or st).error(f"{name}: {message}")
    if errors:
        return None
    return model.model_validate(values).model_dump(mode="json")


def custom_form(app_env: AppEnv, model: type[BaseModel], current: dict[str, Any]) -> dict[str, Any] | None:
    """The app's own ``app_args_form.py``; its result is validated like the generated form's."""
    path = app_env.app_dir / CUSTOM_FORM
    try:
        spec = importlib.util.spec_from_file_location(f"_switchyard_args_form_{app_env.app}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # fresh each run: edits to the form show on the next rerun
        values = module.args_form(dict(current), model)
    except Exception as e:
        show_app_failure(e, f"drawing {path}")
        return None
    if values is None:
        return None
    errors = field_errors(model, values)
    for name, message in errors.items():
        st.error(f"{name}: {message}")
    return None if errors else model.model_validate(values).model_dump(mode="json")


def render(app_env: AppEnv, app_cls: type, settings: AppSettings) -> None:
    """The App args section."""
    model = app_cls.Args
    current = dict(settings.args)
    try:
        validate_args(app_cls, current, f"{settings.path} [args]")
    except ArgsError as e:
        show_error(e, "Correct it below and save (an unknown arg must be removed from app_settings.toml).")
    use_custom = False
    if (app_env.app_dir / CUSTOM_FORM).is_file():
        use_custom = st.toggle(f"Use the app's own form ({CUSTOM_FORM})", value=False,
                               key=f"args-custom-{app_env.app}")
    v = f"{app_env.app}-{file_mtime(settings.path)}"
    if use_custom:
        values = custom_form(app_env, model, current)
    else:
        values = generated_form(model, current, key=f"args-form-{v}")
    saved_key = f"args-saved-{app_env.app}"
    if values is not None:
        diff = changed(current, values, model_defaults(model))
        try:
            if diff:
                update_args(settings.path, diff)
        except SwitchyardError as e:
            show_error(e)
            return
        st.session_state[saved_key] = sorted(diff) or ["nothing changed"]
        st.rerun()
    saved = st.session_state.pop(saved_key, None)
    if saved:
        st.success(f"[args] saved: {', '.join(saved)}")
