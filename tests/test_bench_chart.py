"""The benchmark chart (benchmarks/chart.py): normalised bars, both orientations, valid SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from benchmarks import chart
from benchmarks.matrix import select_scenarios, select_servers

META: dict[str, Any] = {"date": "2026-11-30", "git": "abc1234", "cpu_model": "cpu", "cores": 2}


def measurement(scenario: str, server: str, **result: float) -> dict[str, Any]:
    return {"scenario": scenario, "server": server, "round": 1, "result": result}


def bar_labels(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    ns = "{http://www.w3.org/2000/svg}"
    return [t.text or "" for t in root.iter(f"{ns}title")]


def test_bars_are_relative_to_wsserver_and_longer_is_better() -> None:
    servers = select_servers("wsserver,picows,aiohttp")
    scenarios = select_scenarios("a,b")
    measurements = [
        measurement("b", "wsserver", msgs_per_s=100_000),
        measurement("b", "picows", msgs_per_s=150_000),
        measurement("b", "aiohttp", msgs_per_s=50_000),
        # Latency: lower is better, so half wsserver's latency is a 2x bar.
        measurement("a", "wsserver", p50_us=60, p99_us=90),
        measurement("a", "picows", p50_us=30, p99_us=180),
    ]
    svg = chart.render_svg(META, measurements, servers, scenarios)
    assert svg is not None
    titles = bar_labels(svg)
    assert "picows: 150,000 msgs/s (1.50x)" in titles
    assert "aiohttp: 50,000 msgs/s (0.50x)" in titles
    assert "wsserver: 100,000 msgs/s (1.00x)" in titles
    assert "picows: 30.0 µs (2.00x)" in titles
    assert "picows: 180.0 µs (0.50x)" in titles
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)" height', svg)]
    assert max(widths) <= chart._PLOT_W  # a 2x bar fits; longer ones are cut at MAX_RATIO


def test_no_chart_without_wsserver_or_without_a_peer() -> None:
    servers = select_servers("wsserver,picows")
    scenarios = select_scenarios("b")
    only_peer = [measurement("b", "picows", msgs_per_s=1.0)]
    assert chart.render_svg(META, only_peer, servers, scenarios) is None
    only_us = [measurement("b", "wsserver", msgs_per_s=1.0)]
    assert chart.render_all(META, only_us, servers, scenarios) == {}


def test_the_asgi_columns_have_their_own_chart() -> None:
    servers = select_servers("wsserver,picows,asgi-wsserver,uvicorn-sansio")
    scenarios = select_scenarios("b")
    measurements = [
        measurement("b", "wsserver", msgs_per_s=10.0),
        measurement("b", "picows", msgs_per_s=20.0),
        measurement("b", "asgi-wsserver", msgs_per_s=8.0),
        measurement("b", "uvicorn-sansio", msgs_per_s=4.0),
    ]
    charts = chart.render_all(META, measurements, servers, scenarios)
    assert set(charts) == {"chart", "chart-asgi"}
    assert "uvicorn websockets-sansio: 4 msgs/s (0.50x)" in bar_labels(charts["chart-asgi"])
    assert not any("uvicorn" in t for t in bar_labels(charts["chart"]))
