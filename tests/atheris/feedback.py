"""Extra coverage feedback: one code edge per outcome cell a target tells apart.

libFuzzer keeps an input only when it reaches new coverage, and the product's code follows the
same path for, say, an envelope refused at its first frame and one refused at its third (the
frame loop runs either way). A target that reports such an outcome as a cell number through the
function made here gives each cell a branch of its own, so libFuzzer keeps one input per cell
and mutates on from it: deeper into a genuine envelope, or into each format with each chunk size.
"""

from __future__ import annotations

from collections.abc import Callable

import atheris


def _tree(low: int, high: int, depth: int) -> list[str]:
    """A balanced decision tree over ``low <= cell < high`` with one leaf block per cell."""
    indent = "    " * depth
    if high - low == 1:
        return [f"{indent}leaf = {low}"]
    middle = (low + high) // 2
    return [
        f"{indent}if cell < {middle}:",
        *_tree(low, middle, depth + 1),
        f"{indent}else:",
        *_tree(middle, high, depth + 1),
    ]


def cell_feedback(cells: int) -> Callable[[int], None]:
    """An instrumented function of a cell number in ``0 <= cell < cells``, costing about
    log2(cells) comparisons a call."""
    if cells < 1:
        raise ValueError("at least one cell")
    source = "\n".join(["def reach(cell):", *_tree(0, cells, 1), "    return None"])
    namespace: dict[str, object] = {}
    exec(compile(source, f"<cell feedback {cells}>", "exec"), namespace)  # our text, made above
    reach = namespace["reach"]
    assert callable(reach)
    instrumented: Callable[[int], None] = atheris.instrument_func(reach)
    return instrumented
