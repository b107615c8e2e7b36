"""The results of a run as an SVG bar chart, every scenario normalised to wsserver.

One group of bars per scenario (and metric), one bar per server: that server's
median relative to wsserver's (asyncio) median in the same run, oriented so that
a longer bar is always better: for "higher is better" metrics the server's
figure ÷ wsserver's, for "lower is better" ones wsserver's ÷ the server's.
wsserver's own bar is therefore 1.0, and a line marks it. Each bar is labelled
with its ratio and its raw median. Plain SVG, no plotting library.

Two charts: the libraries' columns against wsserver, and the ASGI columns
against wsserver serving the same ASGI application. ``python -m benchmarks.run``
writes them to ``benchmarks/results/latest.svg`` and ``latest-asgi.svg`` after
every run, and to ``benchmarks/chart.svg`` and ``benchmarks/chart-asgi.svg``
(the charts the README shows) after a full run: every scenario, every server,
at least 3 rounds, no ``--quick``.
"""

from __future__ import annotations

from html import escape

from benchmarks.matrix import Metric, Scenario, Server
from benchmarks.report import Measurement, _fmt, _median, values

#: Bars longer than this ratio are cut, their label says by how much.
MAX_RATIO = 3.0
#: One colour per column, in the order of the report's columns.
COLOURS = (
    "#1f6feb", "#7aa7f5", "#9aa4b2", "#e36209", "#f6a35b", "#2da44e", "#8fd19e",
    "#8250df", "#c297ff", "#cf222e", "#f08c95", "#bf8700", "#eac54f", "#57606a",
    "#0a7d8c", "#6ed3e0", "#a0522d", "#d2a27a",
)  # fmt: skip

_BAR = 14
_GAP = 3
_GROUP_GAP = 18
_LABEL_W = 250
_PLOT_W = 520
_VALUE_W = 170
_LEGEND_ROW = 20


#: The charts of a run: their name, the column each is normalised to, and its title.
CHARTS = (
    ("chart", "wsserver", "each server relative to wsserver (asyncio), longer is better"),
    (
        "chart-asgi",
        "asgi-wsserver",
        "one ASGI application on each server, relative to wsserver (ASGI, asyncio), "
        "longer is better",
    ),
)


def chart_servers(servers: list[Server], asgi: bool) -> list[Server]:
    """The columns a chart shows: the main table's (not baselines, not floors), ASGI or not."""
    return [
        s for s in servers if not s.group and not s.base and s.library != "floor" and s.asgi == asgi
    ]


def render_all(
    meta: dict[str, object],
    measurements: list[Measurement],
    servers: list[Server],
    scenarios: list[Scenario],
) -> dict[str, str]:
    """Every chart the run has the columns for, by name ("chart", "chart-asgi")."""
    out = {}
    for name, reference, title in CHARTS:
        svg = render_svg(meta, measurements, servers, scenarios, reference, title)
        if svg is not None:
            out[name] = svg
    return out


def render_svg(
    meta: dict[str, object],
    measurements: list[Measurement],
    servers: list[Server],
    scenarios: list[Scenario],
    reference_key: str = "wsserver",
    title: str = CHARTS[0][2],
) -> str | None:
    """One chart, or None when the run has no figure of ``reference_key`` to normalise to."""
    shown = chart_servers(servers, asgi=reference_key.startswith("asgi-"))
    reference = next((s for s in shown if s.key == reference_key), None)
    if reference is None:
        return None
    rows: list[tuple[Scenario, Metric, list[tuple[Server, float, float]]]] = []
    for scenario in scenarios:
        for metric in scenario.metrics:
            medians = _medians(measurements, metric, scenario)
            ours = medians.get(reference.key)
            if not ours:
                continue
            bars = []
            for server in shown:
                value = medians.get(server.key)
                if value:
                    ratio = value / ours if metric.higher_is_better else ours / value
                    bars.append((server, ratio, value))
            if len(bars) > 1:
                rows.append((scenario, metric, bars))
    if not rows:
        return None
    colours = {s.key: COLOURS[i % len(COLOURS)] for i, s in enumerate(shown)}
    used = [s for s in shown if any(s is b[0] for _, _, bars in rows for b in bars)]
    legend_h = _LEGEND_ROW * ((len(used) + 2) // 3) + 10
    top = 84 + legend_h
    height = top + sum(len(bars) * (_BAR + _GAP) + _GROUP_GAP for _, _, bars in rows) + 40
    width = _LABEL_W + _PLOT_W + _VALUE_W
    scale = _PLOT_W / MAX_RATIO

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="10" y="22" font-size="16" font-weight="bold">'
        f"wsserver benchmarks: {escape(title)}</text>",
        *(
            f'<text x="10" y="{40 + 14 * k}" fill="#57606a">{escape(line)}</text>'
            for k, line in enumerate(_subtitle(meta))
        ),
    ]
    for i, server in enumerate(used):
        x = 10 + (i % 3) * 300
        y = 72 + (i // 3) * _LEGEND_ROW
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colours[server.key]}"/>')
        out.append(f'<text x="{x + 18}" y="{y + 11}">{escape(server.label)}</text>')
    plot_bottom = height - 30
    for ratio in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        x = _LABEL_W + ratio * scale
        style = 'stroke="#1f2328" stroke-width="1.5"' if ratio == 1.0 else 'stroke="#d0d7de"'
        out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{plot_bottom}" {style}/>')
        out.append(
            f'<text x="{x:.1f}" y="{plot_bottom + 14}" text-anchor="middle" '
            f'fill="#57606a">{ratio:g}x</text>'
        )
    y = top
    for scenario, metric, bars in rows:
        first = metric is scenario.metrics[0]
        title = scenario.title if first else f"({scenario.key}) {metric.label}"
        for k, line in enumerate(_wrap(title, 40)[:3]):
            out.append(
                f'<text x="{_LABEL_W - 8}" y="{y + 12 + 14 * k}" text-anchor="end">'
                f"{escape(line)}</text>"
            )
        out.append(
            f'<text x="{_LABEL_W - 8}" y="{y + 12 + 14 * min(3, len(_wrap(title, 40)))}" '
            f'text-anchor="end" fill="#57606a">{escape(metric.unit)}, '
            f"{'higher' if metric.higher_is_better else 'lower'} is better</text>"
        )
        for server, ratio, value in bars:
            length = min(ratio, MAX_RATIO) * scale
            out.append(
                f'<rect x="{_LABEL_W}" y="{y}" width="{length:.1f}" height="{_BAR}" '
                f'fill="{colours[server.key]}"><title>{escape(server.label)}: '
                f"{_fmt(value, metric)} {escape(metric.unit)} ({ratio:.2f}x)</title></rect>"
            )
            cut = " ▸" if ratio > MAX_RATIO else ""
            out.append(
                f'<text x="{_LABEL_W + length + 4:.1f}" y="{y + _BAR - 3}" font-size="11">'
                f"{ratio:.2f}x{cut}  {escape(_fmt(value, metric))}</text>"
            )
            y += _BAR + _GAP
        y += _GROUP_GAP
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _medians(
    measurements: list[Measurement], metric: Metric, scenario: Scenario
) -> dict[str, float]:
    out = {}
    for (scenario_key, server_key), vals in values(measurements, metric).items():
        median = _median(vals)
        if scenario_key == scenario.key and median is not None:
            out[server_key] = median
    return out


def _subtitle(meta: dict[str, object]) -> list[str]:
    return [
        f"{meta.get('date', '')}, git {meta.get('git', '?')}; "
        f"{meta.get('cpu_model', '')}, {meta.get('cores', '?')} cores",
        f"median of {meta.get('rounds', '?')} interleaved round(s); the report with every "
        "figure: benchmarks/results/latest.md",
    ]


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]
