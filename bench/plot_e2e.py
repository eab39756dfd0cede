"""Log-log plot of bench/results/e2e-*.json: time against events, pipeline vs floors.

    .venv/bin/python bench/plot_e2e.py      # bench/e2e.png (matplotlib) or bench/e2e.svg

Series: the month-end close (whole `tally run` process), ingestion (the `usage_events`
steps of the replay), the incremental run (100k new events; cold, and warm through
`tally serve`), the DuckDB floor (one
statement, whole process) and naive pandas. Measured points are filled. Without a 100M
measurement the close, the floor, ingestion and the incremental run are extrapolated to
100M events: a fixed cost plus a cost per event (t = a + b n) through the two largest
measured sizes, drawn dashed (a curve on log axes) with hollow points. The issue's goals
are marked (close <= 120 s at 100M, incremental <= 15 s).

matplotlib is not a dependency of the project: without it the plot is written as a small
hand-rolled SVG (polylines on log axes), so nothing has to be installed.
"""

from __future__ import annotations

import argparse
import json
import math
from html import escape
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET = 100_000_000

SERIES = (  # key in "headline", label, colour
    ("close_wall_s", "month-end close (tally run)", "#d62728"),
    ("ingest_s", "ingestion (usage_events steps)", "#ff7f0e"),
    ("incremental_wall_s", "incremental run (+100k events)", "#9467bd"),
    ("incremental_warm_wall_s", "incremental run, warm (tally serve)", "#e377c2"),
    ("pandas_s", "naive pandas", "#2ca02c"),
    ("floor_s", "DuckDB floor (one statement)", "#1f77b4"),
)
EXTRAPOLATE = ("close_wall_s", "floor_s", "ingest_s", "incremental_wall_s")
GOALS = ((TARGET, 120.0, "goal: close <= 120 s at 100M"),)


def load(results: Path) -> list[dict[str, Any]]:
    out = [json.loads(p.read_text())["headline"] for p in sorted(results.glob("e2e-*.json"))]
    return sorted(out, key=lambda h: h["events"])


def points(rows: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(r["events"], r[key]) for r in rows if r.get(key)]


def affine(pts: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of t = a + b n through the two largest sizes (a >= 0), or None."""
    if len(pts) < 2:
        return None
    (x1, y1), (x2, y2) = pts[-2], pts[-1]
    b = (y2 - y1) / (x2 - x1)
    a = y2 - b * x2
    if b <= 0:
        return None
    if a < 0:  # superlinear between the two points: keep it proportional
        return 0.0, y2 / x2
    return a, b


def extrapolate(pts: list[tuple[float, float]], x: float) -> float | None:
    if not pts or pts[-1][0] >= x or (fit := affine(pts)) is None:
        return None
    return fit[0] + fit[1] * x


def _curve(pts: list[tuple[float, float]], x: float, steps: int = 24) -> list[tuple[float, float]]:
    """Points of the extrapolation from the last measured size to x (log-spaced)."""
    fit = affine(pts)
    if fit is None:
        return []
    x0 = pts[-1][0]
    xs = [x0 * (x / x0) ** (i / steps) for i in range(steps + 1)]
    return [(v, fit[0] + fit[1] * v) for v in xs]


def plot_matplotlib(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for key, name, colour in SERIES:
        pts = points(rows, key)
        if not pts:
            continue
        ax.plot(*zip(*pts, strict=True), "o-", color=colour, label=name)
        if key in EXTRAPOLATE and (y := extrapolate(pts, TARGET)) is not None:
            ax.plot(*zip(*_curve(pts, TARGET), strict=True), "--", color=colour)
            ax.plot([TARGET], [y], "o", mfc="white", color=colour)
    for x, y, text in GOALS:
        ax.plot([x], [y], "*", color="black", ms=12, label=text)
    ax.axhline(15, color="#9467bd", lw=0.8, ls=":", label="goal: incremental <= 15 s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events")
    ax.set_ylabel("seconds (wall)")
    ax.set_title("Tally end-to-end (issue #8): time against events")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def plot_svg(rows: list[dict[str, Any]], out: Path) -> None:
    width, height = 820, 540
    left, right, top, bottom = 70, 250, 40, 60
    pw, ph = width - left - right, height - top - bottom
    ys: list[float] = [15.0] + [y for _, y, _ in GOALS]
    xs: list[float] = [TARGET]
    curves = []
    for key, name, colour in SERIES:
        pts = points(rows, key)
        if not pts:
            continue
        ext = extrapolate(pts, TARGET) if key in EXTRAPOLATE else None
        curves.append((name, colour, pts, ext))
        xs += [x for x, _ in pts]
        ys += [y for _, y in pts] + ([ext] if ext else [])
    # log ranges with a margin; grid lines at 1, 2 and 5 times the powers of ten inside
    x0, x1 = math.log10(min(xs)) - 0.25, math.log10(max(xs)) + 0.25
    y0, y1 = math.log10(min(ys)) - 0.2, math.log10(max(ys)) + 0.2

    def px(x: float) -> float:
        return left + (math.log10(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (math.log10(y) - y0) / (y1 - y0) * ph

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left + pw / 2}" y="22" text-anchor="middle" font-size="15">'
        "Tally end-to-end (issue #8): time against events</text>",
    ]
    for v, major in _grid(x0, x1):
        style = 'stroke="#bbb"' if major else 'stroke="#eee"'
        svg.append(f'<line x1="{px(v):.1f}" y1="{top}" x2="{px(v):.1f}" y2="{top + ph}" {style}/>')  # noqa: E501
        if major:
            svg.append(
                f'<text x="{px(v):.1f}" y="{top + ph + 18}" text-anchor="middle">'
                f"{_events(v)}</text>"
            )
    for v, major in _grid(y0, y1):
        style = 'stroke="#bbb"' if major else 'stroke="#eee"'
        svg.append(
            f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + pw}" y2="{py(v):.1f}" {style}/>'
        )
        if major or (y1 - y0) < 2.5:
            svg.append(
                f'<text x="{left - 8}" y="{py(v) + 4:.1f}" text-anchor="end">{_seconds(v)}</text>'
            )
    svg += [
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>',
        f'<text x="{left + pw / 2}" y="{height - 18}" text-anchor="middle">events</text>',
        f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
        "seconds (wall clock)</text>",
        # the incremental goal: a horizontal dotted line at 15 s
        f'<line x1="{left}" y1="{py(15):.1f}" x2="{left + pw}" y2="{py(15):.1f}" '
        'stroke="#9467bd" stroke-dasharray="2,3"/>',
    ]
    for _name, colour, pts, ext in curves:
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        svg.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}"/>')
        if ext:
            dashed = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in _curve(pts, TARGET))
            svg.append(
                f'<polyline points="{dashed}" fill="none" stroke="{colour}" stroke-width="2" '
                'stroke-dasharray="6,4"/>'
            )
            svg.append(
                f'<circle cx="{px(TARGET):.1f}" cy="{py(ext):.1f}" r="4" fill="white" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
    for x, y, _ in GOALS:
        svg.append(_star(px(x), py(y)))
    # legend
    lx, ly = left + pw + 15, top + 10
    entries = [(name, colour, "solid") for name, colour, _, _ in curves]
    if any(ext for *_, ext in curves):
        entries.append(("extrapolated: fixed + per event", "#555", "dash"))
    entries.append(("goal: incremental <= 15 s", "#9467bd", "dot"))
    entries += [(text, "black", "star") for _, _, text in GOALS]
    for i, (name, colour, kind) in enumerate(entries):
        y = ly + i * 20
        if kind == "star":
            svg.append(_star(lx + 12, y))
        else:
            dash = {
                "solid": "",
                "dash": ' stroke-dasharray="6,4"',
                "dot": ' stroke-dasharray="2,3"',
            }[kind]
            svg.append(
                f'<line x1="{lx}" y1="{y}" x2="{lx + 24}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2"{dash}/>'
            )
        svg.append(f'<text x="{lx + 30}" y="{y + 4}">{escape(name)}</text>')
    svg.append("</svg>")
    out.write_text("\n".join(svg) + "\n")


def _star(x: float, y: float, r: float = 7.0) -> str:
    corners = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = math.pi / 2 + i * math.pi / 5
        corners.append(f"{x + radius * math.cos(angle):.1f},{y - radius * math.sin(angle):.1f}")
    return f'<polygon points="{" ".join(corners)}" fill="black"/>'


def _grid(lo: float, hi: float) -> list[tuple[float, bool]]:
    """(value, is a power of ten) for 1, 2, 5 x 10^d with log10 inside [lo, hi]."""
    out = []
    for d in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**d
            if lo <= math.log10(v) <= hi:
                out.append((v, m == 1))
    return out


def _events(v: float) -> str:
    for suffix, k in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= k:
            return f"{v / k:g}{suffix}"
    return f"{v:g}"


def _seconds(v: float) -> str:
    return f"{v:g} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--out", type=Path, help="default bench/e2e.png, or .svg without matplotlib"
    )
    parser.add_argument("--svg", action="store_true", help="the SVG even when matplotlib exists")
    args = parser.parse_args(argv)
    rows = load(args.results)
    if not rows:
        raise SystemExit(f"no e2e-*.json under {args.results}")
    try:
        if args.svg:
            raise ImportError
        import matplotlib  # noqa: F401
    except ImportError:
        out = args.out or REPO / "bench" / "e2e.svg"
        plot_svg(rows, out)
    else:
        out = args.out or REPO / "bench" / "e2e.png"
        plot_matplotlib(rows, out)
    print(f"wrote {out}")
    for key, name, _ in SERIES:
        pts = points(rows, key)
        ext = extrapolate(pts, TARGET) if key in EXTRAPOLATE else None
        if ext:
            print(f"  {name}: {ext:,.0f} s at {TARGET:,} events (extrapolated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
