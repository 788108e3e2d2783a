"""Bar charts per worker as one inline SVG: the plan's load (the draft's bars, the saved
plan's as outlines over them) and a run's planned against measured seconds (side by side).

Drawn on the server, so the Orchestrate page loads no chart bundle: with Plotly the browser
first fetched and parsed a 4.7 MB bundle, about a third of the page's load on this machine.
Each bar is a ``rect.bar`` with ``data-series`` and ``data-x`` (what a browser test reads) and
a ``<title>`` (the browser's tooltip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 600, 260, 46, 10, 34, 40
PEAK, BAR, LIGHT, OUTLINE = "#e07b39", "#4c78a8", "#9ecae1", "#555"


@dataclass
class Series:
    """One bar per category: ``values`` category -> value; ``fill`` or, per category,
    ``fills``; ``outline`` draws the bars as outlines only."""

    name: str
    values: dict[str, float]
    fill: str = BAR
    fills: dict[str, str] = field(default_factory=dict)
    outline: bool = False


def _ticks(top: float) -> list[float]:
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000):
        if top / step <= 5:
            return [i * step for i in range(int(top // step) + 1)]
    step = 10 ** len(str(int(top / 5)))
    return [i * step for i in range(int(top // step) + 1)]


def bars_svg(title: str, categories: list[str], series: list[Series], y_label: str, unit: str = "",
             overlay: bool = False, legend: bool = True) -> str:
    """The SVG text: per category, one bar of each series, side by side (``overlay``: on top
    of each other, in order). ``unit`` follows the figures above the bars ("%" or "s")."""
    top = max([v for s in series for v in s.values.values()] + [0.0]) * 1.15 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    col = plot_w / max(1, len(categories))
    group_w = max(2.0, col * 0.7)
    bar_w = group_w if overlay else group_w / max(1, len(series))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
           f'style="max-width: {WIDTH + 120}px" role="img" aria-label="{escape(title)}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{LEFT}" y="16" font-size="14">{escape(title)}</text>']
    if legend:
        x = WIDTH - RIGHT - sum(24 + 6 * len(s.name) for s in series)
        for s in series:
            swatch = f'fill="none" stroke="{OUTLINE}"' if s.outline else f'fill="{s.fill}"'
            out.append(f'<rect x="{x:.0f}" y="6" width="12" height="12" {swatch}/>'
                       f'<text x="{x + 16:.0f}" y="16">{escape(s.name)}</text>')
            x += 24 + 6 * len(s.name)
    for t in _ticks(top):
        out.append(f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{WIDTH - RIGHT}" y2="{y(t):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 4}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#555">{t:g}</text>')
    out.append(f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" '
               f'fill="#555">{escape(y_label)}</text>')
    # Names and figures only where they fit; the tooltips carry them always.
    names = col >= 6.5 * max((len(c) for c in categories), default=0)
    figures = bar_w >= 40
    for n, cat in enumerate(categories):
        x0 = LEFT + n * col + (col - group_w) / 2
        for k, s in enumerate(series):
            v = s.values.get(cat, 0.0)
            x = x0 + (0 if overlay else k * bar_w)
            paint = (f'fill="none" stroke="{OUTLINE}" stroke-width="1.5"' if s.outline
                     else f'fill="{s.fills.get(cat, s.fill)}"')
            tip = f"{cat} · {s.name}: {v:.2f}{' ' + unit if unit else ''}"
            out.append(f'<rect class="bar" data-series="{escape(s.name)}" data-x="{escape(cat)}" '
                       f'x="{x:.2f}" y="{y(v):.2f}" width="{bar_w:.2f}" height="{y(0) - y(v):.2f}" {paint}>'
                       f'<title>{escape(tip)}</title></rect>')
            if figures and not (overlay and k):
                label = max(s2.values.get(cat, 0.0) for s2 in series) if overlay else v
                out.append(f'<text x="{x + bar_w / 2:.2f}" y="{y(label) - 4:.2f}" text-anchor="middle">'
                           f'{v:.1f}{" " + unit if unit else ""}</text>')
        if names:
            out.append(f'<text x="{x0 + group_w / 2:.2f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
                       f'fill="#555">{escape(cat)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" stroke="#888"/></svg>')
    return "".join(out)
