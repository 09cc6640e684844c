"""`portlens report` in a real browser: headless Chromium (tests/browser.py) opens the page
from its file, offline. No console error; every chart drawn by Plotly (an SVG with marks in
it); the numbers shown are the other commands' `--json` numbers; clicking a connection draws
its ladder as SVG, the same segments `portlens ladder` prints; a screenshot is written.

With PORTLENS_DOCS_SCREENSHOT=1 the screenshot of the bundled capture's page is written to
docs/report-screenshot.png (the README shows it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from portlens.cli import main
from portlens.report.html import read_payload
from tests.browser import chromium, open_report
from tests.corpus import REPO, corpus_dir

SAMPLE = REPO / "captures" / "loopback-sample.pcap"
DOCS_SCREENSHOT = REPO / "docs" / "report-screenshot.png"
NO_CORPUS = "public capture corpus not found: set PORTLENS_CORPUS or provide " \
            "../shared/captures/public"

CHARTS_DRAWN = """
return [...document.querySelectorAll('div.chart')].map(div => {
  const svg = div.querySelector('svg.main-svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = [...div.querySelectorAll('g.trace path')].filter(p =>
    (p.getAttribute('d') || '').length > 2).length;
  return {id: div.id, svg: !!svg, width: box.width, height: box.height, marks};
});
"""
CONN_VALUES = """
const keys = arguments[0];
return Array.from({length: CONN.n}, (_, i) => keys.map(k => k === 'ts_ns' ? CONN.tsNs(i)
  : CONN.get(i, k)));
"""
CONN_KEYS = ("ts_ns", "uid", "proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
             "port_service", "duration_ns", "orig_bytes", "resp_bytes", "conn_state",
             "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts",
             "resp_ip_bytes", "orig_state", "resp_state", "end_reason", "icmp_type",
             "icmp_code")
"""`conns --json` fields the page holds for every connection (report/html/data.py)."""
POINT = """
// The pixel, from the chart's top-left corner, of point j of trace k of a Plotly chart.
const gd = document.getElementById(arguments[0]);
const t = gd._fullData[arguments[1]], j = arguments[2];
const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, size = gd._fullLayout._size;
const box = gd.getBoundingClientRect();
return {x: size.l + xa.c2p(xa.d2c(t.x[j])), y: size.t + ya.c2p(ya.d2c(t.y[j])),
        width: box.width, height: box.height};
"""
TABLE = """
const rows = document.querySelectorAll(`#${arguments[0]} tbody tr`);
return [...rows].map(tr => Object.fromEntries([...tr.children].map(td =>
  [td.dataset.key, [td.dataset.v, td.textContent]])));
"""


def json_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(list(argv)) in (0, 1)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def build(capsys: pytest.CaptureFixture[str], path: Path, out: Path, *argv: str) -> Path:
    assert main(["report", str(path), "-o", str(out), *argv]) == 0
    capsys.readouterr()
    return out


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def check_page(driver: Any, capsys: pytest.CaptureFixture[str], page: Path, path: Path,
               charts: set[str]) -> dict[str, Any]:
    """Everything the issue asks of a page; the page's data."""
    open_report(driver, page)
    assert console_errors(driver) == []
    assert driver.execute_script("return document.getElementById('problems').innerText") == ""
    drawn = {c["id"]: c for c in driver.execute_script(CHARTS_DRAWN)}
    assert set(drawn) == charts
    for c in drawn.values():
        assert c["svg"] and c["width"] > 100 and c["height"] > 100 and c["marks"] > 0, c
    data = read_payload(page.read_text(encoding="utf-8"))
    # the summary's numbers
    stats = json.loads(json.dumps(json_lines(capsys, "packets", "--stats", "--json",
                                             str(path))[0]))
    ports = json_lines(capsys, "ports", "--json", str(path))
    total = ports[-1]
    cards = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.card')].map(c => "
        "[c.dataset.key, [c.querySelector('.v').dataset.v, c.querySelector('.v').textContent]]))")
    assert cards["packets"] == [str(stats["frames"]), f"{stats['frames']:,}"]
    assert cards["bytes on the wire"][0] == str(stats["wire_bytes"])
    assert cards["connections"] == [str(total["total"]["conns"]),
                                    f"{total['total']['conns']:,}"]
    assert cards["server ports"][0] == str(total["ports"])
    # the ports table, in `ports --json`'s order
    rows = driver.execute_script(TABLE, "ports-table")
    port_rows = [r for r in ports if r["type"] == "port"]
    assert len(rows) == min(25, len(port_rows))
    for row, rec in zip(rows, port_rows, strict=False):
        for key in ("conns", "completed", "refused", "unanswered", "reset", "pkts_c2s",
                    "pkts_s2c", "bytes_c2s", "bytes_s2c", "clients", "servers"):
            assert row[key][0] == str(rec[key]), (rec["port"], key)
        assert row["conns"][1] == f"{rec['conns']:,}"
    # handshakes, by port
    shown = {int(r["port"][0]): r for r in driver.execute_script(TABLE, "handshakes-table")}
    for rec in json_lines(capsys, "handshakes", "--json", str(path))[:25]:
        row = shown[rec["port"]]
        for key in ("handshakes", "syns", "syn_acks", "syn_retransmits", "completed",
                    "refused", "server_rtt_p50_ns", "client_rtt_max_ns"):
            assert row[key][0] == ("" if rec[key] is None else str(rec[key])), key
    # top talkers, in `hosts --json`'s order
    hosts = json_lines(capsys, "hosts", "--json", str(path))
    for row, rec in zip(driver.execute_script(TABLE, "hosts-table"), hosts, strict=False):
        assert [row["addr"][1], row["pkts"][0], row["bytes"][0]] == [
            rec["addr"], str(rec["pkts"]), str(rec["bytes"])]
    # the connections table's first page, in `conns --json`'s order
    conns = json_lines(capsys, "conns", "--json", str(path))
    # every connection as the page's script unpacked it (uids made again from their hash)
    decoded = driver.execute_script(CONN_VALUES, list(CONN_KEYS))
    assert len(decoded) == len(conns)
    for values, rec in zip(decoded, conns, strict=True):
        want = [str(rec["ts_ns"]) if k == "ts_ns" else rec[k] for k in CONN_KEYS]
        assert values == want, rec["uid"]
    rows = driver.execute_script(TABLE, "conns-table")
    assert len(rows) == min(50, len(conns))
    for row, rec in zip(rows, conns, strict=False):
        assert row["uid"][0] == rec["uid"]
        for key in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "conn_state",
                    "history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
                    "orig_state", "resp_state"):
            assert row[key][0] == ("" if rec[key] is None else str(rec[key])), key
    return data


def click_ladder(driver: Any, capsys: pytest.CaptureFixture[str], data: dict[str, Any],
                 path: Path) -> str:
    """Show only connections with a ladder, click the first, check the SVG drawn against
    `portlens ladder`'s text; the uid."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    table = driver.find_element(By.ID, "table-conns")
    Select(table.find_element(By.CSS_SELECTOR, "select[aria-label=ladder]")).select_by_value(
        "embedded")
    row = table.find_element(By.CSS_SELECTOR, "tbody tr")
    uid = row.find_element(By.CSS_SELECTOR, "td[data-key=uid]").get_attribute("data-v")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    panel = driver.find_element(By.ID, "ladder-panel")
    assert panel.get_attribute("data-uid") == uid
    svg = panel.find_element(By.CSS_SELECTOR, "svg.ladder")
    assert svg.size["width"] > 500 and svg.size["height"] > 100
    labels = driver.execute_script(
        "return [...arguments[0].querySelectorAll('g.seg text.label')].map(t => t.textContent)",
        svg)
    rec = data["ladders"][uid]
    assert labels == [r[4] for r in rec["rows"] if r[0] == "seg"]
    assert main(["ladder", "--utc", str(path), "--conn", uid]) == 0
    text = capsys.readouterr().out
    arrows = [line for line in text.splitlines() if "|--" in line or "|<" in line]
    assert len(arrows) == len(labels)
    for line, label in zip(arrows, labels, strict=True):
        assert f" {label} " in line
    assert rec["verdict"] in panel.text
    return uid


def click_point(driver: Any, chart: str, trace: int, j: int, *, click: bool = True) -> None:
    """Move the mouse onto point j of trace ``trace`` of a Plotly chart (and click there), as
    a person would: Plotly finds the point under the mouse itself."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    div = driver.find_element(By.ID, chart)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", div)
    p = driver.execute_script(POINT, chart, trace, j)
    actions = ActionChains(driver).move_to_element_with_offset(
        div, round(p["x"] - p["width"] / 2), round(p["y"] - p["height"] / 2)).pause(0.3)
    if click:
        actions = actions.click().pause(0.3)
    actions.perform()


def check_timeline(driver: Any, data: dict[str, Any]) -> None:
    """Every connection is one line, in its outcome's trace; hovering a line names the
    connection, clicking it draws its ladder; dragging zooms into time, a double click
    zooms out."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    uids = _uids(data)
    outcomes = [data["conns"]["cols"]["outcome"]["dict"][c]
                for c in data["conns"]["cols"]["outcome"]["codes"]]
    traces = driver.execute_script(
        "return document.getElementById('chart-timeline').data.map(t => "
        "({name: t.name, ids: t.customdata}))")
    lines = {}
    for t in traces:
        for i in t["ids"][::3]:
            assert i not in lines
            lines[i] = t["name"]
    assert lines == {i: o.replace("_", "-") for i, o in enumerate(outcomes)}
    assert driver.find_element(By.ID, "timeline-note").text.startswith(f"{len(uids):,} connections")
    # hover, then click, the start of the first trace's second line
    k, j = 0, 3 if len(traces[0]["ids"]) > 3 else 0
    conn = traces[k]["ids"][j]
    click_point(driver, "chart-timeline", k, j, click=False)
    hover = driver.execute_script(
        "return [...document.querySelectorAll('#chart-timeline .hovertext')]"
        ".map(e => e.textContent).join(' ')")
    assert uids[conn] in hover
    click_point(driver, "chart-timeline", k, j)
    panel = driver.find_element(By.ID, "ladder-panel")
    assert panel.get_attribute("data-uid") == uids[conn]
    assert panel.find_element(By.CSS_SELECTOR, "svg.ladder").size["height"] > 100
    # drag across the middle third of the plot: the time axis zooms in; a double click
    # zooms back out
    span = "const a = document.getElementById('chart-timeline')._fullLayout.xaxis; " \
           "return [a.r2l(a.range[0]), a.r2l(a.range[1])]"
    full = driver.execute_script(span)
    div = driver.find_element(By.ID, "chart-timeline")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", div)
    size = driver.execute_script(
        "const s = document.getElementById('chart-timeline')._fullLayout._size; "
        "const b = document.getElementById('chart-timeline').getBoundingClientRect(); "
        "return [s.l, s.t, s.w, s.h, b.width, b.height]")
    left, top, width, height, box_w, box_h = size
    x0 = round(left + width / 3 - box_w / 2)
    y0 = round(top + height / 2 - box_h / 2)
    ActionChains(driver).move_to_element_with_offset(div, x0, y0).click_and_hold() \
        .move_by_offset(round(width / 6), 2).move_by_offset(round(width / 6), 2) \
        .release().pause(0.5).perform()
    zoomed = driver.execute_script(span)
    assert full[0] < zoomed[0] < zoomed[1] < full[1]
    assert abs((zoomed[1] - zoomed[0]) / (full[1] - full[0]) - 1 / 3) < 0.05
    ActionChains(driver).move_to_element_with_offset(div, x0, y0).double_click() \
        .pause(0.8).perform()
    assert driver.execute_script(span) == full


def check_scans(driver: Any, capsys: pytest.CaptureFixture[str], data: dict[str, Any],
                path: Path) -> None:
    """The scan summary's rows are `ports --json`'s scan records; its chart has a point per
    attempt, in its outcome's trace; clicking one shows that connection in the ladder
    panel."""
    from selenium.webdriver.common.by import By

    scans = [r for r in json_lines(capsys, "ports", "--json", str(path)) if r["type"] == "scan"]
    rows = driver.execute_script(TABLE, "scans-table")
    assert len(rows) == min(10, len(scans))
    for row, rec in zip(rows, scans, strict=False):
        assert [row["orig_h"][1], row["resp_h"][1], row["proto"][1]] == [
            rec["orig_h"], rec["resp_h"], rec["proto"]]
        for key in ("ports", "attempts", *data["meta"]["outcomes"]):
            assert row[key][0] == str(rec[key]), key
        assert row["ports"][1] == f"{rec['ports']:,}"
        assert row["answered_ports"][0] == ",".join(map(str, rec["answered_ports"]))
    top = scans[0]
    traces = driver.execute_script(
        "return document.getElementById('chart-scan').data.map(t => "
        "({name: t.name, ids: t.customdata, y: t.y}))")
    counts = {t["name"]: len(t["ids"]) for t in traces}
    assert counts == {o.replace("_", "-"): top[o] for o in data["meta"]["outcomes"] if top[o]}
    assert sum(counts.values()) == top["attempts"]
    ports = {p for t in traces for p in t["y"]}
    assert len(ports) == top["ports"]
    assert set(top["answered_ports"]) <= ports
    uids = _uids(data)
    conn = traces[-1]["ids"][0]
    click_point(driver, "chart-scan", len(traces) - 1, 0)
    assert driver.find_element(By.ID, "ladder-panel").get_attribute("data-uid") == uids[conn]


def test_scan_capture_in_chromium(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip(NO_CORPUS)
    path = root / "ndpi-synscan.pcap"
    page = build(capsys, path, tmp_path / "synscan.html", "--ladders", "40")
    with chromium() as driver:
        data = check_page(driver, capsys, page, path, {
            "chart-outcomes", "chart-ports", "chart-traffic", "chart-rtt", "chart-timeline",
            "chart-rate-packets", "chart-rate-conns", "chart-hosts", "chart-convs",
            "chart-scan"})
        click_ladder(driver, capsys, data, path)
        check_scans(driver, capsys, data, path)
        # a connection without an embedded ladder says how to draw it
        driver.execute_script(
            "document.querySelector('#table-conns select[aria-label=ladder]').value='';"
            "document.querySelector('#table-conns select[aria-label=ladder]')"
            ".dispatchEvent(new Event('change'))")
        missing = next(i for i, uid in enumerate(_uids(data)) if uid not in data["ladders"])
        driver.execute_script(f"showLadder({missing}, false)")
        assert "portlens ladder FILE --conn" in driver.find_element(
            "id", "ladder-panel").text
        assert console_errors(driver) == []
        shot = tmp_path / "synscan.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def _uids(data: dict[str, Any]) -> list[str]:
    col = data["conns"]["cols"]["uid"]
    return [col["dict"][c] for c in col["codes"]]


def test_bundled_capture_in_chromium(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's screenshot: the bundled loopback capture's page, named as the README's
    commands name it."""
    monkeypatch.chdir(REPO)
    page = build(capsys, SAMPLE.relative_to(REPO), tmp_path / "sample.html")
    with chromium(1400, 1750) as driver:
        data = check_page(driver, capsys, page, SAMPLE, {
            "chart-outcomes", "chart-ports", "chart-traffic", "chart-rtt", "chart-timeline",
            "chart-rate-packets", "chart-rate-conns", "chart-hosts", "chart-convs"})
        assert "No host probed 15 or more ports" in driver.find_element("id", "scans").text
        click_ladder(driver, capsys, data, SAMPLE)
        check_timeline(driver, data)
        assert console_errors(driver) == []
        driver.execute_script("window.scrollTo(0, 0)")
        shot = DOCS_SCREENSHOT if os.environ.get("PORTLENS_DOCS_SCREENSHOT") else (
            tmp_path / "sample.png")
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.parametrize("name", ["zeek-wikipedia", "zeek-ftp-ipv6", "ndpi-6in4tunnel"])
def test_connections_decoded_in_chromium(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         name: str) -> None:
    """Captures with IPv6 flows (multicast UDP, TCP, a tunnel's inner flows): every
    connection as the page's script unpacks it, uids made again from IPv6 addresses
    included, equals conns --json."""
    root = corpus_dir()
    if root is None:
        pytest.skip(NO_CORPUS)
    path = next(root.glob(name + ".pcap*"))
    page = build(capsys, path, tmp_path / f"{name}.html", "--ladders", "0")
    conns = json_lines(capsys, "conns", "--json", str(path))
    assert any(":" in c["id.orig_h"] for c in conns)
    with chromium() as driver:
        open_report(driver, page)
        assert console_errors(driver) == []
        decoded = driver.execute_script(CONN_VALUES, list(CONN_KEYS))
    assert decoded == [[str(rec["ts_ns"]) if k == "ts_ns" else rec[k] for k in CONN_KEYS]
                       for rec in conns]
