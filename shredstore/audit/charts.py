"""The HTML report's charts, drawn here as inline SVG: no script, no library, no network.

Each chart is a ``<figure>`` with a caption, the SVG (``role="img"``, a tooltip per bar) and
a legend in HTML. Every text in it is escaped: event types come from the log.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["COLOURS", "Timeline", "over_time", "proportions", "timeline"]

COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442")
"""Okabe and Ito's palette, told apart also with a colour-vision deficiency."""
_OTHER = "#999999"
_WIDTH, _HEIGHT = 720, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 12, 36
_BAR_MAX = 48
_LABELS_SHOWN = 8
"""At most this many period labels under the bars (every bar keeps its tooltip)."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """Consecutive periods covering some dates: days, or months or years when days would
    make more bars than a chart can show."""

    labels: tuple[str, ...]
    period: Callable[[date], str]
    """The label of the period a date falls in."""


def timeline(days: Collection[date]) -> Timeline:
    """The periods from the first to the last of `days` (at most about 60 of them)."""
    first, last = min(days), max(days)
    if (last - first).days < 62:
        count = (last - first).days + 1
        return Timeline(tuple((first + timedelta(n)).isoformat() for n in range(count)),
                        date.isoformat)
    if last.year - first.year < 5:
        months = range(first.year * 12 + first.month - 1, last.year * 12 + last.month)
        return Timeline(tuple(f"{m // 12:04}-{m % 12 + 1:02}" for m in months),
                        lambda day: f"{day.year:04}-{day.month:02}")
    return Timeline(tuple(str(year) for year in range(first.year, last.year + 1)),
                    lambda day: str(day.year))


def over_time(title: str, counts: Mapping[tuple[date, str], int], *, top: int = 6) -> str:
    """Stacked bars of `counts` (by day and series) per period: the `top` series by total,
    the others together as "other"."""
    totals: Counter[str] = Counter()
    for (_, series), count in counts.items():
        totals[series] += count
    named = [series for series, _ in totals.most_common(top if len(totals) > top + 1 else None)]
    when = timeline({day for day, _ in counts})
    stacks = {name: [0] * len(when.labels) for name in [*named, "other"]}
    column = {label: n for n, label in enumerate(when.labels)}
    for (day, series), count in counts.items():
        stacks[series if series in named else "other"][column[when.period(day)]] += count
    if not any(stacks["other"]):
        del stacks["other"]
    colours = {name: COLOURS[n] if name in named else _OTHER for n, name in enumerate(stacks)}
    legend = [(name, sum(stack), colours[name]) for name, stack in stacks.items()]
    return _figure(title, _stacked_svg(title, when.labels, stacks, colours),
                   legend if len(legend) > 1 else [])


def proportions(title: str, parts: Sequence[tuple[str, int, str]]) -> str:
    """Horizontal bars, one per (label, count, colour)."""
    row, label_width = 30, 200
    height = _TOP + row * len(parts) + 8
    scale = (_WIDTH - label_width - 90) / max(1, *(count for _, count, _ in parts))
    shapes = []
    for n, (label, count, colour) in enumerate(parts):
        y = _TOP + n * row
        width = count * scale
        shapes.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{width:.1f}" height="20" fill="{colour}">'
            f"<title>{_e(label)}: {count:,}</title></rect>"
            f'<text x="{label_width + width + 6:.1f}" y="{y + 15}">{count:,}</text>')
    return _figure(title, _svg(title, height, "".join(shapes)), [])


def _stacked_svg(title: str, labels: Sequence[str], stacks: Mapping[str, list[int]],
                 colours: Mapping[str, str]) -> str:
    plot_width, plot_height = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    highest = max(sum(column) for column in zip(*stacks.values(), strict=True))
    step = _nice(highest / 4)
    top = step * max(1, math.ceil(highest / step))
    slot = plot_width / len(labels)
    bar = min(slot * 0.8, _BAR_MAX)
    shapes = []
    for tick in range(0, top + 1, step):
        y = _TOP + plot_height - tick * plot_height / top
        shapes.append(f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                      f'class="grid"/><text x="{_LEFT - 6}" y="{y + 4:.1f}" '
                      f'text-anchor="end">{tick:,}</text>')
    every = math.ceil(len(labels) / _LABELS_SHOWN)
    for n, label in enumerate(labels):
        x = _LEFT + n * slot
        base = _TOP + plot_height
        for name, counts in stacks.items():
            height = counts[n] * plot_height / top
            if height:
                base -= height
                shapes.append(f'<rect x="{x + (slot - bar) / 2:.1f}" y="{base:.1f}" '
                              f'width="{bar:.1f}" height="{height:.1f}" '
                              f'fill="{colours[name]}"><title>{_e(label)}, {_e(name)}: '
                              f"{counts[n]:,}</title></rect>")
        if n % every == 0:
            shapes.append(f'<text x="{x + slot / 2:.1f}" y="{_HEIGHT - _BOTTOM + 16}" '
                          f'text-anchor="middle">{_e(label)}</text>')
    return _svg(title, _HEIGHT, "".join(shapes))


def _nice(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least `value`."""
    power: int = 10 ** max(0, math.floor(math.log10(max(value, 1))))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= value)


def _svg(title: str, height: int, shapes: str) -> str:
    return (f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {_WIDTH} {height}" '
            f'width="{_WIDTH}" height="{height}">{shapes}</svg>')


def _figure(title: str, svg: str, legend: Sequence[tuple[str, int, str]]) -> str:
    keys = "".join(f'<li><svg width="10" height="10" aria-hidden="true"><rect width="10" '
                   f'height="10" fill="{colour}"/></svg> {_e(name)} ({count:,})</li>'
                   for name, count, colour in legend)
    return (f'<figure class="chart"><figcaption>{_e(title)}</figcaption>{svg}'
            + (f'<ul class="chart-legend">{keys}</ul>' if keys else "") + "</figure>")


def _e(text: str) -> str:
    return html.escape(text, quote=True)
