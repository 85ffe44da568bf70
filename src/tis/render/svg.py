"""Small inline SVG charts drawn by hand: no plotting library, nothing fetched when the report opens.

Every piece of text (benchmark, category and model names come from data) goes through `esc`.
Each mark carries a <title> with its exact numbers, shown as a tooltip.
"""

from __future__ import annotations

from html import escape

PALETTE = ("#3b6fb6", "#d9822b", "#3a9a5b", "#b8433e", "#7d5ba6", "#8c6d31", "#c2559a", "#5f6b73")
GOOD, BAD, NEUTRAL = "#2f8a4f", "#c0392b", "#7f8c8d"
FONT = 12


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{esc(title)}">'
            f'<title>{esc(title)}</title>{"".join(body)}</svg>')


def _text_w(title: str) -> float:
    """Room for a bold 13 px title (a generous average glyph width)."""
    return 12 + 7.6 * len(title)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def legend(series: list[str], x: float, y: float) -> list[str]:
    out, cx = [], x
    for i, name in enumerate(series):
        label = _clip(name, 40)
        out.append(f'<rect x="{cx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour(i)}"/>'
                   f'<text x="{cx + 14:.1f}" y="{y:.1f}" font-size="{FONT}">{esc(label)}</text>')
        cx += 24 + 7 * len(label)
    return out


def bar_chart(title: str, rows: list[tuple[str, list[tuple[int, float | None, list | None, int]]]],
              series: list[str], *, axis_label: str) -> str:
    """Horizontal bars in [0, 1] with interval whiskers: one row per label, one bar per series.

    rows: [(label, [(series index, value, [lo, hi] or None, n), ...]), ...]
    """
    label_w, plot_w, bar_h, gap = 190, 420, 12, 10
    per_row = max(1, max((len(bars) for _, bars in rows), default=1))
    row_h = per_row * (bar_h + 2) + gap
    top = 44
    height = top + row_h * len(rows) + 34
    width = max(label_w + plot_w + 70, _text_w(title))
    body = [f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>', *legend(series, 4, 34)]
    x0 = label_w
    for tick in range(0, 101, 25):
        x = x0 + plot_w * tick / 100
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 30}" stroke="#ddd"/>'
                    f'<text x="{x:.1f}" y="{height - 16}" font-size="{FONT - 1}" text-anchor="middle">{tick}%</text>')
    body.append(f'<text x="{x0 + plot_w / 2:.1f}" y="{height - 2}" font-size="{FONT - 1}" '
                f'text-anchor="middle">{esc(axis_label)}</text>')
    y = top
    for label, bars in rows:
        body.append(f'<text x="{label_w - 6}" y="{y + row_h / 2 - gap / 2 + 4:.1f}" font-size="{FONT}" '
                    f'text-anchor="end">{esc(_clip(label, 28))}<title>{esc(label)}</title></text>')
        for k, (s, value, ci, n) in enumerate(bars):
            by = y + k * (bar_h + 2)
            tip = f"{series[s]} — {label}: {_pct(value)}" + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "") + f", n={n}"
            if value is None:
                body.append(f'<text x="{x0 + 4}" y="{by + bar_h - 2}" font-size="{FONT - 2}">n/a<title>{esc(tip)}</title></text>')
                continue
            body.append(f'<rect x="{x0}" y="{by}" width="{plot_w * value:.1f}" height="{bar_h}" fill="{colour(s)}" '
                        f'fill-opacity="0.85"><title>{esc(tip)}</title></rect>')
            if ci:
                lo, hi, cy = x0 + plot_w * ci[0], x0 + plot_w * ci[1], by + bar_h / 2
                body.append(f'<line x1="{lo:.1f}" y1="{cy:.1f}" x2="{hi:.1f}" y2="{cy:.1f}" stroke="#222"/>'
                            f'<line x1="{lo:.1f}" y1="{cy - 3:.1f}" x2="{lo:.1f}" y2="{cy + 3:.1f}" stroke="#222"/>'
                            f'<line x1="{hi:.1f}" y1="{cy - 3:.1f}" x2="{hi:.1f}" y2="{cy + 3:.1f}" stroke="#222"/>')
            body.append(f'<text x="{x0 + plot_w + 6}" y="{by + bar_h - 2}" font-size="{FONT - 2}">{_pct(value)}</text>')
        y += row_h
    return _svg(width, height, body, title)


def matrix_chart(title: str, m, *, good: str = "safe", bad: str = "unsafe") -> str:
    """The thought x answer 2x2 of a `tis.results.schema.Matrix`: rows thought good/bad, columns answer good/bad; shade by rate."""
    cells = [[("both_safe", "both " + good), ("safe_thought_unsafe_answer", f"{bad} answer only")],
             [("self_correction", "self-correction"), ("collapse", "collapse")]]
    size, left, top = 120, 96, 52
    body = [f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>',
            f'<text x="{left + size / 2}" y="{top - 8}" font-size="{FONT}" text-anchor="middle">answer {esc(good)}</text>',
            f'<text x="{left + 1.5 * size}" y="{top - 8}" font-size="{FONT}" text-anchor="middle">answer {esc(bad)}</text>',
            f'<text x="{left - 6}" y="{top + size / 2}" font-size="{FONT}" text-anchor="end">thought {esc(good)}</text>',
            f'<text x="{left - 6}" y="{top + 1.5 * size}" font-size="{FONT}" text-anchor="end">thought {esc(bad)}</text>']
    for r, row in enumerate(cells):
        for c, (key, name) in enumerate(row):
            cell = getattr(m, key)  # a tis.results.schema.Rate
            value = cell.rate
            hue = GOOD if key == "both_safe" else BAD if key == "collapse" else "#d9822b"
            x, y = left + c * size, top + r * size
            tip = f"{name}: {_pct(value)} ({cell.k}/{cell.n})"
            body.append(f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" fill="{hue}" '
                        f'fill-opacity="{0.12 + 0.8 * (value or 0):.2f}" stroke="#999"><title>{esc(tip)}</title></rect>'
                        f'<text x="{x + size / 2}" y="{y + size / 2 - 4}" font-size="15" text-anchor="middle" '
                        f'font-weight="bold">{_pct(value)}</text>'
                        f'<text x="{x + size / 2}" y="{y + size / 2 + 14}" font-size="{FONT - 1}" text-anchor="middle">'
                        f'{cell.k}/{cell.n}</text>'
                        f'<text x="{x + size / 2}" y="{y + size - 10}" font-size="{FONT - 2}" text-anchor="middle">'
                        f'{esc(name)}</text>')
    note = f"no thought: {m.no_thought}, undecided: {m.undecided}"
    body.append(f'<text x="4" y="{top + 2 * size + 16}" font-size="{FONT - 1}">{esc(note)}</text>')
    return _svg(max(left + 2 * size + 10, _text_w(title)), top + 2 * size + 24, body, title)


def forest_plot(title: str, items: list[tuple[str, float | None, list | None, int, str]], *, axis_label: str) -> str:
    """Differences with intervals around a zero line. items: (label, diff, [lo, hi], n, verdict)
    where verdict is worse | better | unclear (colours the mark)."""
    label_w, plot_w, row_h, top = 230, 380, 20, 30
    values = [v for _, d, ci, _, _ in items for v in ([d] + list(ci or [])) if v is not None]
    widest = max([0.0, *(abs(v) for v in values)])
    span = next((s for s in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0) if s >= widest * 1.05), 1.0)
    height = top + row_h * max(1, len(items)) + 36
    x0 = label_w + plot_w / 2

    def px(v: float) -> float:
        return x0 + plot_w / 2 * v / span

    body = [f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>']
    for frac in (-1, -0.5, 0, 0.5, 1):
        x = px(frac * span)
        body.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 30}" '
                    f'stroke="{"#555" if frac == 0 else "#e3e3e3"}"/>'
                    f'<text x="{x:.1f}" y="{height - 16}" font-size="{FONT - 1}" text-anchor="middle">'
                    f'{100 * frac * span:+.0f}</text>')
    body.append(f'<text x="{x0:.1f}" y="{height - 2}" font-size="{FONT - 1}" text-anchor="middle">{esc(axis_label)}</text>')
    for i, (label, diff, ci, n, verdict) in enumerate(items):
        y = top + i * row_h + row_h / 2
        col = BAD if verdict == "worse" else GOOD if verdict == "better" else NEUTRAL
        tip = (f"{label}: {'n/a' if diff is None else f'{100 * diff:+.1f}'} points"
               + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "") + f", n={n}")
        body.append(f'<text x="{label_w - 6}" y="{y + 4:.1f}" font-size="{FONT}" text-anchor="end">'
                    f'{esc(_clip(label, 34))}<title>{esc(label)}</title></text>')
        if ci:
            body.append(f'<line x1="{px(ci[0]):.1f}" y1="{y:.1f}" x2="{px(ci[1]):.1f}" y2="{y:.1f}" stroke="{col}" '
                        f'stroke-width="2"/>')
        if diff is not None:
            body.append(f'<circle cx="{px(diff):.1f}" cy="{y:.1f}" r="4.5" fill="{col}"><title>{esc(tip)}</title></circle>')
    return _svg(max(label_w + plot_w + 20, _text_w(title)), height, body, title)


def line_chart(title: str, x_labels: list[str], series: list[tuple[str, list[tuple[float, list | None, int] | None]]],
               *, axis_label: str, y_label: str) -> str:
    """Points with interval bars joined by lines, one series per run; y in [0, 1]."""
    left, top, plot_w, plot_h = 56, 44, max(240, 70 * len(x_labels)), 200
    width, height = max(left + plot_w + 20, _text_w(title)), top + plot_h + 48
    body = [f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>',
            *legend([s for s, _ in series], 4, 34)]
    for tick in range(0, 101, 25):
        y = top + plot_h * (1 - tick / 100)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="{FONT - 1}" text-anchor="end">{tick}%</text>')
    step = plot_w / max(1, len(x_labels))
    for i, lab in enumerate(x_labels):
        body.append(f'<text x="{left + step * (i + 0.5):.1f}" y="{top + plot_h + 16}" font-size="{FONT - 1}" '
                    f'text-anchor="middle">{esc(lab)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="{FONT - 1}" '
                f'text-anchor="middle">{esc(axis_label)}</text>'
                f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="{FONT - 1}" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{esc(y_label)}</text>')
    for s, (name, points) in enumerate(series):
        shift = (s - (len(series) - 1) / 2) * 6
        coords = []
        for i, p in enumerate(points):
            if p is None:
                continue
            value, ci, n = p
            x = left + step * (i + 0.5) + shift
            y = top + plot_h * (1 - value)
            coords.append(f"{x:.1f},{y:.1f}")
            if ci:
                body.append(f'<line x1="{x:.1f}" y1="{top + plot_h * (1 - ci[0]):.1f}" x2="{x:.1f}" '
                            f'y2="{top + plot_h * (1 - ci[1]):.1f}" stroke="{colour(s)}" stroke-opacity="0.6"/>')
            tip = f"{name} — {x_labels[i]} tokens: {_pct(value)}" + (
                f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "") + f", n={n}"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour(s)}"><title>{esc(tip)}</title></circle>')
        if len(coords) > 1:
            body.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{colour(s)}" stroke-width="1.5"/>')
    return _svg(width, height, body, title)
