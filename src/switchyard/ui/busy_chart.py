"""The aggregated timeline of a big run as one inline SVG: per worker, the busy share of each
time bucket, stacked by batch status.

Drawn on the server as a few hundred rectangles (workers x buckets x statuses, from
``RunStore.busy_buckets``), so the browser shows it at once: a Plotly chart first loads
Plotly's 4.7 MB bundle, which took 1-4 s of the Timeline tab's 2 s on a loaded machine.
Each bar carries a ``<title>`` (the browser's tooltip) with its figures.
"""

from __future__ import annotations

import time
from html import escape

WIDTH, LEFT, RIGHT, TOP, BAND, GAP, AXIS = 1000, 150, 10, 26, 64, 14, 30
ORDER = ("completed", "running", "failed", "dead", "cancelled", "pending")


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def busy_svg(agg: dict, colors: dict[str, str]) -> str:
    """The SVG text for ``agg`` (``busy_buckets``' result); ``colors``: status -> CSS colour."""
    rows = agg["rows"]
    buckets, width, t0 = max(1, agg["buckets"]), agg["width"], agg["t0"] or 0.0
    workers = sorted({r[0] for r in rows})
    statuses = sorted({r[2] for r in rows}, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    cells: dict[tuple[str, int], list[tuple[str, float, int]]] = {}
    for worker, bucket, status, seconds, batches in rows:
        cells.setdefault((worker, bucket), []).append((status, seconds / width if width else 0.0, batches))
    # One scale for every band: 1.0 is one batch executing all along (more with worker threads).
    top = max([1.0, *(sum(share for _, share, _ in c) for c in cells.values())])
    plot_w = WIDTH - LEFT - RIGHT
    col = plot_w / buckets
    height = TOP + len(workers) * (BAND + GAP) + AXIS
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
           f'role="img" aria-label="busy share per worker" font-family="sans-serif" font-size="12">']
    x = LEFT
    for status in statuses:  # the legend
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colors.get(status, "#888")}"/>'
                   f'<text x="{x + 16}" y="16">{escape(status)}</text>')
        x += 24 + 8 * len(status)
    for n, worker in enumerate(workers):
        y0 = TOP + n * (BAND + GAP)
        base = y0 + BAND
        out.append(f'<text x="{LEFT - 8}" y="{y0 + BAND / 2 + 4}" text-anchor="end">{escape(worker)}</text>'
                   f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#bbb"/>'
                   f'<text x="{LEFT - 8}" y="{y0 + 10}" text-anchor="end" fill="#888" font-size="10">'
                   f'{top:g}</text>')
        for bucket in range(buckets):
            y = base
            for status, share, batches in sorted(cells.get((worker, bucket), ()),
                                                 key=lambda c: statuses.index(c[0])):
                h = BAND * share / top
                y -= h
                start = t0 + bucket * width
                tip = (f"{worker} · {_clock(start)}–{_clock(start + width)} · {status}: busy {share:.2f}, "
                       f"{batches:,} batches started")
                out.append(f'<rect class="busy" x="{LEFT + bucket * col:.2f}" y="{y:.2f}" width="{col:.2f}" '
                           f'height="{h:.2f}" fill="{colors.get(status, "#888")}"><title>{escape(tip)}</title></rect>')
    axis_y = TOP + len(workers) * (BAND + GAP) + 4
    for frac, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        out.append(f'<text x="{LEFT + frac * plot_w:.1f}" y="{axis_y + 12}" text-anchor="{anchor}" fill="#555">'
                   f'{_clock(t0 + frac * buckets * width)}</text>')
    out.append("</svg>")
    return "".join(out)
