"""The plan's load per worker as one inline SVG: a bar per worker, the peak in orange, and the
saved plan's bars as outlines while the draft has unsaved moves.

Drawn on the server, so the Distribute section loads no chart bundle: with a Plotly chart the
browser first fetched and parsed Plotly's 4.7 MB bundle, about a third of the Orchestrate
page's load on this machine. Each bar carries a ``<title>`` (the browser's tooltip).
"""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 600, 260, 46, 10, 34, 40
PEAK, BAR, OUTLINE = "#e07b39", "#4c78a8", "#555"


def _ticks(top: float) -> list[float]:
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50) if top / s <= 5)
    return [i * step for i in range(int(top // step) + 1)]


def load_svg(ids: list[str], share: dict[str, float], saved: dict[str, float] | None = None) -> str:
    """The SVG text: ``share`` is worker -> load % of the draft, ``saved`` the saved plan's
    (drawn as outlines; ``None`` when the draft has no unsaved moves)."""
    peak = max(share.values(), default=0.0)
    top = max([peak, *(saved or {}).values(), 1.0]) * 1.15  # room for the labels above the bars
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    col = plot_w / max(1, len(ids))
    bar_w = max(2.0, col * 0.7)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
           f'style="max-width: {WIDTH + 120}px" role="img" aria-label="load per worker" font-family="sans-serif" font-size="11">',
           f'<text x="{LEFT}" y="16" font-size="14">Load per worker</text>']
    if saved is not None:
        out.append(f'<rect x="{WIDTH - 170}" y="6" width="12" height="12" fill="{BAR}"/>'
                   f'<text x="{WIDTH - 154}" y="16">this plan</text>'
                   f'<rect x="{WIDTH - 90}" y="6" width="12" height="12" fill="none" stroke="{OUTLINE}"/>'
                   f'<text x="{WIDTH - 74}" y="16">saved plan</text>')
    for t in _ticks(top):
        out.append(f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{WIDTH - RIGHT}" y2="{y(t):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 4}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#555">{t:g}</text>')
    out.append(f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" '
               f'fill="#555">load %</text>')
    # Names and figures only where they fit under and above their bar; the tooltips carry them always.
    names = col >= 6.5 * max((len(i) for i in ids), default=0)
    figures = col >= 40
    for n, wid in enumerate(ids):
        x = LEFT + n * col + (col - bar_w) / 2
        v = share.get(wid, 0.0)
        colour = PEAK if v >= peak - 1e-9 else BAR
        tip = f"{wid}: {v:.2f} % of the plan's weight" + (
            f" (saved plan: {saved.get(wid, 0.0):.2f} %)" if saved is not None else "")
        out.append(f'<rect class="load" x="{x:.2f}" y="{y(v):.2f}" width="{bar_w:.2f}" '
                   f'height="{y(0) - y(v):.2f}" fill="{colour}"><title>{escape(tip)}</title></rect>')
        s = saved.get(wid, 0.0) if saved is not None else 0.0
        if saved is not None:
            out.append(f'<rect x="{x:.2f}" y="{y(s):.2f}" width="{bar_w:.2f}" height="{y(0) - y(s):.2f}" '
                       f'fill="none" stroke="{OUTLINE}" stroke-width="1.5"/>')
        cx = x + bar_w / 2
        if figures:
            out.append(f'<text x="{cx:.2f}" y="{y(max(v, s)) - 4:.2f}" '
                       f'text-anchor="middle">{v:.1f} %</text>')
        if names:
            out.append(f'<text x="{cx:.2f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" fill="#555">'
                       f'{escape(wid)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" stroke="#888"/></svg>')
    return "".join(out)
