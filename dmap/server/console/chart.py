"""The Map Run page's throughput chart as inline SVG: items/s and failures/s over time.

Drawn on the server (the page and its live updates carry the same markup), so the browser needs
no charting library and the chart reads without JavaScript. Owns only geometry and labels.
"""

from __future__ import annotations

from html import escape

from ...store.activity import RatePoint

WIDTH, HEIGHT = 640, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 28


def throughput_svg(points: list[RatePoint]) -> str:
    """An SVG line chart of ``points`` (two polylines, axes and their ranges); a short note when empty."""
    if not points:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" data-points="0" '
            'aria-label="No child has finished yet"><text x="50%" y="50%" text-anchor="middle">'
            "No child has finished yet</text></svg>"
        )
    span = max(points[-1].seconds, 1.0)
    top = max(max(p.items_per_second for p in points), 1e-9)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def xy(seconds: float, value: float) -> str:
        return f"{_LEFT + plot_w * seconds / span:.1f},{_TOP + plot_h * (1 - value / top):.1f}"

    # Steps: each slice's rate held from its start to its end, so the first slice starts at 0 s.
    starts = [0.0] + [p.seconds for p in points[:-1]]
    done = " ".join(xy(t, p.items_per_second) for a, p in zip(starts, points, strict=True) for t in (a, p.seconds))
    failed = " ".join(xy(t, p.failures_per_second) for a, p in zip(starts, points, strict=True) for t in (a, p.seconds))
    peak_failed = max(p.failures_per_second for p in points)
    label = (
        f"Items per second over {_duration(span)}: peak {top:,.1f}/s, last {points[-1].items_per_second:,.1f}/s; "
        f"failures per second peak {peak_failed:,.1f}/s"
    )
    base = _TOP + plot_h
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" data-points="{len(points)}" '
        f'aria-label="{escape(label)}">'
        f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{WIDTH - _RIGHT}" y2="{base}"/>'
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}"/>'
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + 10}" text-anchor="end">{_short(top)}</text>'
        f'<text class="tick" x="{_LEFT - 4}" y="{base}" text-anchor="end">0</text>'
        f'<text class="tick" x="{_LEFT}" y="{HEIGHT - 8}">0 s</text>'
        f'<text class="tick" x="{WIDTH - _RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{_duration(span)}</text>'
        f'<polyline class="line-items" points="{done}"/>'
        f'<polyline class="line-failures" points="{failed}"/>'
        "</svg>"
    )


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k/s"
    return f"{value:,.0f}/s" if value >= 10 else f"{value:.1f}/s"


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def duration_text(seconds: float | None) -> str:
    """A duration for people (``—`` when unknown)."""
    return "—" if seconds is None else _duration(seconds)
