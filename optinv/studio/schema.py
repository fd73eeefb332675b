"""The one schema every JSON request body of the studio is checked against before it is used.

A body that does not fit (a word where a number goes, ``1e400``, a list where an object goes, a
30-digit seed, a field nobody knows) gets a 400 with one line in the CLI's wording, never a 500
with a traceback. Each checker returns the value in the form the service expects.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from optinv.errors import OptinvError
from optinv.engine.options import SEED_MAX

Check = Callable[[Any, str], Any]
MAX_TEXT = 200                    # names, ids, recipes, layer lists
MAX_DATA_URL = 24 * 1024 * 1024   # a painted canvas or blend mask as a PNG data URL


def _fail(name: str, wanted: str, value: Any) -> OptinvError:
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return OptinvError(f"`{name}` must be {wanted}, got {shown[:60]}")


def text(limit: int = MAX_TEXT) -> Check:
    def check(value: Any, name: str) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise _fail(name, f"a string of at most {limit} characters", value)
        return value
    return check


def integer(lo: int, hi: int) -> Check:
    """An integer in [lo, hi], also written as a string of digits (form fields send strings)."""
    def check(value: Any, name: str) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,25}\s*", value):
            value = int(value)
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise _fail(name, f"an integer between {lo} and {hi}", value)
        return value
    return check


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    """A finite number in [lo, hi] (NaN, ±inf and 1e400 are refused)."""
    def check(value: Any, name: str) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            span = "a finite number" if math.isinf(lo) and math.isinf(hi) else f"a number between {lo:g} and {hi:g}"
            raise _fail(name, span, value)
        return float(value)
    return check


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, "true or false", value)
    return value


def obj(fields: dict[str, Check]) -> Check:
    """An object with only these fields (each optional; null counts as absent)."""
    def check(value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(name, "an object", value)
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise OptinvError(f"unknown field `{unknown[0][:40]}` in `{name}` (known: {', '.join(fields)})")
        return {k: fields[k](v, f"{k}" if name == "request" else f"{name}.{k}")
                for k, v in value.items() if v is not None}
    return check


def table(values: Check, limit: int = 64) -> Check:
    """An object of up to ``limit`` names, each with a value that passes ``values``."""
    def check(value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > limit:
            raise _fail(name, f"an object of at most {limit} entries", value)
        return {text()(k, name): values(v, f"{name}.{k}"[:80]) for k, v in value.items()}
    return check


def blank_or(check: Check) -> Check:
    """Form fields left empty arrive as ""; they mean "the default"."""
    def inner(value: Any, name: str) -> Any:
        return None if value == "" else check(value, name)
    return inner


PAGE = text(64)
JOB = obj({
    "page": PAGE, "job": text(), "runs": integer(1, 1000),
    "source": obj({"canvas": text(MAX_DATA_URL), "name": text(), "sample": text(), "upload": text()}),
    "options": obj({"space": blank_or(text()), "steps": blank_or(integer(-10 ** 9, 10 ** 9)),
                    "recipe": blank_or(text()), "seed": blank_or(integer(0, SEED_MAX)), "align": flag}),
})
SEED = obj({"page": PAGE, "seed": integer(0, SEED_MAX), "truncation": number()})
EDIT = obj({
    "page": PAGE, "a": text(), "b": blank_or(text()), "alphas": table(number()), "mode": text(),
    "t": number(0, 1), "layers": blank_or(text()), "mask": text(MAX_DATA_URL),
})


def check_body(body: Any, schema: Check) -> dict[str, Any]:
    """``body`` as the schema reads it, or one :class:`OptinvError` that names the first bad field."""
    return schema(body, "request")
