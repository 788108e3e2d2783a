"""Trigger conditions: a small Python expression decides whether a fire launches a run.

The expression sees the new data of a file trigger and the schedule's last run::

    n_files >= 2 and total_bytes > 1_000_000
    last_status != "failed"
    any(name.endswith(".csv") for name in files)

Only literals, names from :data:`NAMES`, comparisons, ``and``/``or``/``not``, arithmetic,
and the functions in :data:`FUNCTIONS` are allowed, so an expression cannot reach
anything else. It is checked when the schedule is added and evaluated at each fire.
"""

from __future__ import annotations

import ast
from typing import Any

from switchyard.exceptions import ScheduleError

NAMES = {
    "files": "names of the new files (file triggers; [] otherwise)",
    "n_files": "number of new files",
    "total_bytes": "their total size in bytes",
    "last_status": "status of the schedule's last run ('none' before the first)",
    "last_seconds": "duration in seconds of the schedule's last run (None if unknown)",
}
FILE_NAMES = ("files", "n_files", "total_bytes")
FUNCTIONS = {"len": len, "any": any, "all": all, "min": min, "max": max, "sum": sum}
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.Constant, ast.Name, ast.Load, ast.Store, ast.List, ast.Tuple, ast.Call, ast.IfExp,
    ast.GeneratorExp, ast.comprehension, ast.Attribute,
)
_STR_METHODS = {"endswith", "startswith", "lower", "upper"}


def _compile(text: str) -> ast.Expression:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ScheduleError(f"condition {text!r}: {e.msg} at column {e.offset or 0}: write a Python "
                            "expression such as \"n_files >= 2 and last_status != 'failed'\"") from None
    local: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ScheduleError(f"condition {text!r}: {type(node).__name__} is not allowed: use names "
                                f"({', '.join(NAMES)}), comparisons, and/or/not and {', '.join(FUNCTIONS)}")
        if isinstance(node, ast.comprehension) and isinstance(node.target, ast.Name):
            local.add(node.target.id)
        if isinstance(node, ast.Attribute) and node.attr not in _STR_METHODS:
            raise ScheduleError(f"condition {text!r}: .{node.attr} is not allowed: only "
                                f"{', '.join(sorted(_STR_METHODS))} on names")
        if isinstance(node, ast.Call) and not (
                (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS)
                or isinstance(node.func, ast.Attribute)):
            raise ScheduleError(f"condition {text!r}: only {', '.join(FUNCTIONS)} and string "
                                "methods can be called")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in NAMES and node.id not in FUNCTIONS \
                and node.id not in local:
            raise ScheduleError(f"condition {text!r}: unknown name '{node.id}': use "
                                + ", ".join(NAMES))
    return tree


def check_condition(text: str, files: bool = True) -> str:
    """Return ``text`` stripped if it is a valid condition; raise ScheduleError otherwise.

    ``files`` says whether the schedule is a file trigger (the file names mean nothing otherwise).
    """
    tree = _compile(text)
    if not files:
        used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & set(FILE_NAMES))
        if used:
            raise ScheduleError(f"condition {text!r}: {', '.join(used)} only exist for file triggers "
                                "(--watch): use last_status / last_seconds here")
    return text.strip()


def evaluate(text: str, **values: Any) -> bool:
    """Evaluate a checked condition with the given :data:`NAMES`; missing names take their
    empty value. Raises ScheduleError if the expression fails (e.g. compares None with a number)."""
    scope = {"files": [], "n_files": 0, "total_bytes": 0, "last_status": "none", "last_seconds": None}
    scope.update(values)
    code = compile(_compile(text), "<condition>", "eval")
    try:
        return bool(eval(code, {"__builtins__": {}, **FUNCTIONS}, scope))  # noqa: S307 - checked AST
    except Exception as e:  # noqa: BLE001 - any runtime error of the expression is the operator's
        raise ScheduleError(f"condition {text!r} failed: {type(e).__name__}: {e}: fix the expression "
                            "with `switchyard schedule delete` and add it again") from None
