"""Colour for verdicts on a terminal: red for what failed or was refused, green for what holds,
magenta for what is erased, yellow for what is pending or unknown.

Only on a terminal: `click.echo` drops the colour when its stream is not one (piped, a file),
and nothing is coloured when ``NO_COLOR`` is set (https://no-color.org) or for ``--json``.
"""

from __future__ import annotations

import os

import click

__all__ = ["verdict"]

_COLOURS = {
    "failed": ("red", True), "FAILED": ("red", True), "refused": ("red", True),
    "tampered": ("red", True), "problem(s)": ("red", True), "residue found": ("red", True),
    "unknown subject": ("red", True),
    "intact": ("green", False), "valid": ("green", False), "ok": ("green", False),
    "ready": ("green", False), "active": ("green", False), "held": ("green", False),
    "erased": ("magenta", True), "already erased": ("magenta", False),
    "would erase": ("yellow", False), "unknown": ("yellow", False),
    "nothing to do": ("green", False),
}


def verdict(word: str) -> str:
    """`word` in its verdict's colour (as it is, if it is no verdict or colour is off)."""
    colour = _COLOURS.get(word)
    if colour is None or os.environ.get("NO_COLOR"):
        return word
    return click.style(word, fg=colour[0], bold=colour[1])
