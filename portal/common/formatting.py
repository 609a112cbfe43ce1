"""Numbers as people read them, one helper per kind of number, shared by pages and dashboards."""

from __future__ import annotations

import math
from typing import Any

# A ratio within this much of 1 is "about the same": timing noise on a shared machine is larger.
SAME_WITHIN = 0.02


def times_text(ratio: float | None, *, more: str = "faster", less: str = "slower") -> str:
    """A ratio of baseline over optimized as words: 1.8 -> "1.80× faster", 0.73 -> "1.37× slower"
    (never "0.73× faster"); "" when there is none."""
    if ratio is None or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
        return ""
    if abs(ratio - 1.0) < SAME_WITHIN:
        return f"about the same ({ratio:.2f}×)"
    return f"{ratio:.2f}× {more}" if ratio > 1 else f"{1 / ratio:.2f}× {less}"


def value_text(value: Any, *, digits: int = 4, max_items: int = 6) -> str:
    """A label, prediction or target value in a few characters: floats to `digits` significant digits
    (37.380000086810014 -> "37.38"), lists item by item, text as it is."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(value_text(v, digits=digits) for v in value[:max_items])
        return f"[{shown}{', …' if len(value) > max_items else ''}]"
    if isinstance(value, str) and any(c in value for c in ".eE") and len(value) > digits + 2:
        try:
            number = float(value)
        except ValueError:
            return value
        return f"{number:.{digits}g}" if math.isfinite(number) else value
    return str(value)
