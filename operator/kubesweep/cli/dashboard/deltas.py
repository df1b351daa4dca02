"""What changed between two versions of a page's JSON, as a patch the page applies.

An experiment page's JSON holds every trial (5.8 MB at 10,000 trials), while a
write changes a trial or two, the counts and the best. The event stream sends
:func:`diff` of the last two versions instead, and the page rebuilds the new
version with the same rules (``applyPatch`` in ``dashboard.js``; :func:`apply`
here is the reference the tests hold the script to).

A patch is one of:

- ``{"=": value}``: the value is replaced whole;
- ``{"{}": {key: patch, ...}, "-": [key, ...]}``: an object whose listed keys
  changed (each by its own patch) and whose ``-`` keys are gone;
- ``{"+": [value, ...]}``: a list that grew at its end (the best so far);
- ``{"[]": [row, ...], "~": {name: patch, ...}, "-": [name, ...]}``: a list of
  rows named by ``name`` (trials, plot points, a slice per parameter): the ``[]``
  rows are new and appended in the order given, the ``~`` rows changed where they
  are (each by its own patch), and the ``-`` names are gone.

A list is patched by rows only when that rebuilds it in the same order (rows
kept in place, new ones at the end, which is how trials arrive); otherwise it is
replaced whole. ``None`` means nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Patch = dict[str, Any]


def _names(rows: Sequence[Any]) -> list[str] | None:
    """The rows' names when every row is an object with a distinct string ``name``."""
    names = [row.get("name") if isinstance(row, dict) else None for row in rows]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return None
    return [str(n) for n in names]


def _rows(old: Sequence[Any], new: Sequence[Any]) -> Patch | bool | None:
    """A row patch of ``old`` into ``new``; ``None`` when equal; ``False`` when the order
    of ``new`` is not ``old``'s kept rows followed by the new ones."""
    old_names, new_names = _names(old), _names(new)
    if old_names is None or new_names is None:
        return False
    present = set(new_names)
    kept = [n for n in old_names if n in present]
    known = set(old_names)
    added = [n for n in new_names if n not in known]
    if new_names != kept + added:
        return False
    before = dict(zip(old_names, old, strict=True))
    fresh = [row for name, row in zip(new_names, new, strict=True) if name not in known]
    changed = {}
    for name, row in zip(new_names, new, strict=True):
        if name not in known or before[name] is row:
            continue  # a row the server kept as it was: nothing to compare
        if before[name] != row and (inner := diff(before[name], row)):
            changed[name] = inner
    gone = [n for n in old_names if n not in present]
    if not fresh and not changed and not gone:
        return None
    patch: Patch = {"[]": fresh}
    if changed:
        patch["~"] = changed
    if gone:
        patch["-"] = gone
    return patch


def diff(old: Any, new: Any) -> Patch | None:
    """The patch that turns ``old`` into ``new`` (JSON values); ``None`` when equal."""
    if old is new:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        changes = {}
        for key, value in new.items():
            if key not in old:
                changes[key] = {"=": value}
            elif (inner := diff(old[key], value)) is not None:
                changes[key] = inner
        gone = [key for key in old if key not in new]
        if not changes and not gone:
            return None
        patch: Patch = {"{}": changes}
        if gone:
            patch["-"] = gone
        return patch
    if isinstance(old, list) and isinstance(new, list) and old and new:
        rows = _rows(old, new)
        if rows is not False:
            return rows if isinstance(rows, dict) else None
        if len(new) > len(old) and new[: len(old)] == old:
            return {"+": new[len(old) :]}
    if type(old) is type(new) and old == new:
        return None
    return {"=": new}


def apply(old: Any, patch: Patch | None) -> Any:
    """``old`` with ``patch`` applied: the value :func:`diff` was given as ``new``."""
    if patch is None:
        return old
    if "=" in patch:
        return patch["="]
    if "+" in patch:
        return [*old, *patch["+"]]
    if "{}" in patch:
        out = dict(old)
        for key, inner in patch["{}"].items():
            out[key] = apply(old.get(key), inner)
        for key in patch.get("-", []):
            out.pop(key, None)
        return out
    gone = set(patch.get("-", []))
    changed = patch.get("~", {})
    rows = [
        apply(row, changed[row["name"]]) if row["name"] in changed else row
        for row in old
        if row["name"] not in gone
    ]
    return rows + list(patch["[]"])
