"""The report views of the page in real headless Chromium, at a phone's and a laptop's width.

A real dashboard (uvicorn, in a subprocess) serves a database migrated by the real
CLI from the fixtures plus two generated corpora (eleven projects, usage on days a
month apart). At 420 and 1280 px the test switches day / week / month / 5-hour
block, checks that nothing is wider than the window, that every chart is drawn,
that the time axis holds the days without usage, that the switch and the session
order and page live in the URL and survive a reload; it takes a screenshot of each
view and checks the picture is as wide as the window.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import test_browser
from dashboard_helpers import Server, run_cli
from test_browser import CHROMIUM, Page

from context_cleaner.testing.transcripts import generate_transcripts

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing"),
]

WIDTHS = (420, 1280)
ZONE = "America/New_York"
PERIODS = {"daily": "Day", "weekly": "Week", "monthly": "Month", "blocks": "5-hour block"}
CANVASES = ("chart-days", "chart-cost", "chart-models", "chart-projects")

_LAYOUT_JS = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  bodyWidth: document.body.scrollWidth,
  innerWidth: window.innerWidth,
  wide: Array.from(document.querySelectorAll('body *'))
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
    .map((e) => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5),
})"""

_CHART_JS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) painted++;
  const chart = Chart.getChart(c);
  const values = chart.data.datasets.flatMap(
    (ds) => ds.data.map((v) => (typeof v === 'object' ? v.y : v)));
  const scales = Object.fromEntries(Object.entries(chart.scales).map(([k, s]) => [k, s.max]));
  return {
    painted, width: c.width, points: values.filter((v) => v > 0).length,
    labels: chart.data.labels || [], scales,
  };
}"""


def _scaled(route: Any) -> None:
    """The report answers with every token count 10,000 times larger."""
    response = route.fetch()
    body = response.json()
    for item in [body["totals"], *body["rows"]]:
        for key in [k for k in item if k.endswith("_tokens")] + ["cost_usd"]:
            item[key] *= 10_000
    route.fulfill(response=response, json=body)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def cli_report(url: str, kind: str, *flags: str) -> dict[str, Any]:
    done = run_cli("report", kind, "--clickhouse-url", url, "--json", *flags)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def corpus_site(projects_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The fixtures and two generated corpora (the second under other project names)."""
    root = tmp_path_factory.mktemp("report-page")
    projects = root / "projects"
    shutil.copytree(projects_dir, projects)
    for seed, suffix in ((0, ""), (1, "-two")):
        made = generate_transcripts(root / f"generated-{seed}", target_tokens=8_000_000, seed=seed)
        for folder in made.projects_dir.iterdir():
            shutil.move(folder, projects / (folder.name + suffix))
    url = f"chdb://{root / 'db'}"
    done = run_cli("migrate", "--source-dir", str(projects), "--clickhouse-url", url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    expected = {kind: cli_report(url, kind, "--timezone", ZONE) for kind in PERIODS}
    expected["session"] = cli_report(url, "session", "--timezone", ZONE)
    expected["weekly-monday"] = cli_report(
        url, "weekly", "--timezone", ZONE, "--start-of-week", "monday"
    )
    server = Server("--clickhouse-url", url).wait_ready()
    yield server, url, expected
    server.stop()


browser = test_browser.browser
"""One headless Chromium for the module (the fixture of the page's other tests)."""


class ReportTab(Page):
    """A tab in the browser zone ``ZONE`` at ``width`` px."""

    def __init__(self, browser: Any, width: int) -> None:
        self.context = browser.new_context(
            viewport={"width": width, "height": 900}, timezone_id=ZONE, locale="en-US"
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.width = width

    def check_layout(self, shot: Path) -> None:
        layout = self.page.evaluate(_LAYOUT_JS)
        assert layout["innerWidth"] == self.width
        assert layout["scrollWidth"] <= layout["innerWidth"], layout
        assert layout["bodyWidth"] <= layout["innerWidth"], layout
        self.page.screenshot(path=str(shot), full_page=True)
        width, height = png_size(shot)
        assert width == self.width and height > 900, (shot, width, height)
        assert shot.stat().st_size > 30_000, shot

    def charts(self) -> dict[str, Any]:
        drawn = {c: self.page.evaluate(_CHART_JS, c) for c in CANVASES}
        for canvas, got in drawn.items():
            assert got["points"] > 0, (canvas, got)
            assert got["painted"] > 2_000, (canvas, got)
            assert got["width"] <= self.width, (canvas, got)
        return drawn

    def close(self) -> None:
        self.context.close()


def days_between(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


@pytest.mark.parametrize("width", WIDTHS)
def test_each_period_view_fits_draws_and_survives_a_reload(
    browser: Any, corpus_site: Any, width: int, tmp_path: Path
) -> None:
    server, _url, expected = corpus_site
    tab = ReportTab(browser, width)
    tab.open(server.base + "/")
    page = tab.page
    assert page.input_value("#f-timezone") == ZONE  # the browser's zone by default
    assert tab.headline() == expected["daily"]["totals"]["total_tokens"]
    loads = 1
    for period, label in PERIODS.items():
        if period != "daily":
            page.click(f"#period button[data-period='{period}']")
            loads += 1
            tab.wait_loaded(loads)
            assert f"period={period}" in page.url
        assert page.get_attribute("body", "data-period") == period
        assert page.is_visible("#week-start") == (period == "weekly")
        pressed = page.get_attribute(f"#period button[data-period='{period}']", "aria-pressed")
        assert pressed == "true" and page.text_content("#period [aria-pressed=true]") == label
        drawn = tab.charts()
        report = expected[period]
        days = drawn["chart-days"]
        if period == "daily":
            dates = [r["date"] for r in report["rows"]]
            axis = days_between(dates[0], dates[-1])
            assert days["labels"] == axis and len(axis) > len(dates) + 20  # empty days kept
        elif period == "weekly":
            weeks = [r["week"] for r in report["rows"]]
            assert days["labels"][0] == weeks[0] and days["labels"][-1] == weeks[-1]
            assert len(days["labels"]) > len(weeks)
            page.select_option("#week-start", "monday")
            loads += 1
            tab.wait_loaded(loads)
            assert "week_start=monday" in page.url
            mondays = [r["week"] for r in expected["weekly-monday"]["rows"]]
            labels = tab.charts()["chart-days"]["labels"]
            assert labels[0] == mondays[0] and labels[-1] == mondays[-1]
            assert set(mondays) < set(labels) and mondays != weeks
        elif period == "monthly":
            assert days["labels"] == [r["month"] for r in report["rows"]]
        else:
            assert days["labels"] == [] and days["points"] >= 4 * len(report["rows"])
        # input and output have their own scale, far below the cache reads'
        io_max = max(r["input_tokens"] + r["output_tokens"] for r in report["rows"])
        cache_max = max(r["cache_creation_tokens"] + r["cache_read_tokens"] for r in report["rows"])
        assert io_max <= days["scales"]["io"] < cache_max <= days["scales"]["y"]
        assert tab.headline() == report["totals"]["total_tokens"]
        tab.check_layout(tmp_path / f"{period}-{width}.png")
    page.reload()
    tab.wait_loaded(1)
    assert page.get_attribute("body", "data-period") == "blocks"
    tab.charts()
    # a heavy user's numbers (hundreds of billions of cache reads, exact) still fit
    page.route("**/api/report/**", _scaled)
    page.reload()
    tab.wait_loaded(1)
    assert tab.headline() == expected["blocks"]["totals"]["total_tokens"] * 10_000
    tab.check_layout(tmp_path / f"huge-{width}.png")
    assert tab.errors == []
    tab.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_sessions_order_and_page_live_in_the_url(
    browser: Any, corpus_site: Any, width: int, tmp_path: Path
) -> None:
    server, _url, expected = corpus_site
    sessions = expected["session"]["rows"]
    assert len(sessions) > 20
    tab = ReportTab(browser, width)
    tab.open(server.base + "/")
    page = tab.page
    by_cost = sorted(sessions, key=lambda r: (-r["cost_usd"], r["session_id"]))
    page.click("#sessions button[data-sort='cost_usd']")
    assert "sort=cost_usd" in page.url
    tab.wait_rows("sessions", 10)
    _first_rows(page, [r["session_id"] for r in by_cost[:10]])
    page.click("#page-next")  # the server sends the second page
    assert "page=2" in page.url
    _first_rows(page, [r["session_id"] for r in by_cost[10:20]])
    models = page.locator("#sessions tbody tr").first.locator("td").nth(2).text_content() or ""
    assert models and models != "–"
    tab.check_layout(tmp_path / f"sessions-{width}.png")
    page.reload()
    tab.wait_loaded(1)
    _first_rows(page, [r["session_id"] for r in by_cost[10:20]])
    ordered = page.get_attribute("#sessions th[aria-sort=descending] button", "data-sort")
    assert ordered == "cost_usd"
    by_last = sorted(sessions, key=lambda r: r["last_timestamp"], reverse=True)
    page.click("#sessions button[data-sort='last_timestamp']")
    assert "sort=last_timestamp" in page.url and "page=" not in page.url
    _first_rows(page, [r["session_id"] for r in by_last[:10]])
    page.click("#sessions button[data-sort='last_timestamp']")  # again: oldest first
    assert "dir=asc" in page.url
    _first_rows(page, [r["session_id"] for r in by_last[::-1][:10]])
    # a search goes to the server too: the matching sessions only, in the order asked
    needle = by_cost[12]["project"][-6:].upper()
    found = [r["session_id"] for r in by_last[::-1] if needle.lower() in r["project"].lower()]
    assert 0 < len(found) < len(sessions)
    page.fill("#session-search", needle)
    _first_rows(page, found[:10])
    assert "search=" in page.url
    assert tab.errors == []
    tab.close()


def _first_rows(page: Any, want: list[str], timeout: float = 15.0) -> None:
    """Wait until the session table shows exactly the sessions ``want``, in that order."""
    deadline = time.monotonic() + timeout
    while (got := page.locator("#sessions tbody tr td.mono").all_text_contents()) != want:
        assert time.monotonic() < deadline, f"sessions shown {got}, want {want}"
        time.sleep(0.05)


def test_other_bar_and_timezone_picker(browser: Any, corpus_site: Any, tmp_path: Path) -> None:
    server, url, expected = corpus_site
    tab = ReportTab(browser, 1280)
    tab.open(server.base + "/")
    page = tab.page
    projects = {r["project"] for r in expected["session"]["rows"]}
    assert len(projects) == 11
    labels = tab.charts()["chart-projects"]["labels"]
    assert len(labels) == 7 and labels[-1].startswith("other (5)")
    page.select_option("#f-timezone", "Asia/Tokyo")
    page.click("#f-apply")
    tab.wait_loaded(2)
    assert "timezone=Asia%2FTokyo" in page.url or "timezone=Asia/Tokyo" in page.url
    tokyo = cli_report(url, "daily", "--timezone", "Asia/Tokyo")
    drawn = tab.charts()["chart-days"]
    dates = [r["date"] for r in tokyo["rows"]]
    assert drawn["labels"] == days_between(dates[0], dates[-1])
    page.reload()
    tab.wait_loaded(1)
    assert page.input_value("#f-timezone") == "Asia/Tokyo"
    tab.check_layout(tmp_path / "tokyo-1280.png")
    assert tab.errors == []
    tab.close()


MARQUESAS = "Pacific/Marquesas"
"""UTC-09:30: its midnight falls inside the generated corpora's hour and a half of usage."""

_PROJECT_BARS_JS = (
    "() => Chart.getChart(document.getElementById('chart-projects')).data.datasets[0].data"
)


@pytest.mark.parametrize("width", WIDTHS)
def test_zone_picker_and_days_page_the_sessions_as_the_session_report(
    browser: Any, corpus_site: Any, width: int, tmp_path: Path
) -> None:
    """In a zone whose midnight splits sessions, the day's session count, its pages in any
    order and its project ranking are the CLI's ``report session`` of that day and zone;
    the zone, the day and the page survive a reload."""
    server, url, expected = corpus_site
    day = "2026-01-04"  # in Marquesas time; in UTC that day has no usage at all
    rows = cli_report(url, "session", "--timezone", MARQUESAS, "--since", day, "--until", day)
    rows = rows["rows"]
    assert 10 < len(rows) <= 20
    assert cli_report(url, "session", "--since", day, "--until", day)["rows"] == []
    cut = [r for r in rows if r["last_timestamp"] >= "2026-01-05T09:30:00.000Z"]
    assert cut == []  # the day's sessions stop at its end: those that go on were split
    whole = {r["session_id"]: r for r in expected["session"]["rows"]}
    assert any(r["total_tokens"] < whole[r["session_id"]]["total_tokens"] for r in rows)
    tab = ReportTab(browser, width)
    tab.open(server.base + "/")
    page = tab.page
    page.select_option("#f-timezone", MARQUESAS)
    page.fill("#f-start", day)
    page.fill("#f-end", day)
    page.click("#f-apply")
    tab.wait_loaded(2)
    assert page.text_content("#total-sessions") == str(len(rows))
    by_tokens = sorted(rows, key=lambda r: (-r["total_tokens"], r["session_id"]))
    _first_rows(page, [r["session_id"] for r in by_tokens[:10]])
    ranking: dict[str, int] = {}
    for r in rows:
        ranking[r["project"]] = ranking.get(r["project"], 0) + r["total_tokens"]
    totals = sorted(ranking.values(), reverse=True)
    bars = totals[:6] + ([sum(totals[6:])] if len(totals) > 6 else [])
    assert page.evaluate(_PROJECT_BARS_JS) == bars
    by_cost = sorted(rows, key=lambda r: (-r["cost_usd"], r["session_id"]))
    page.click("#sessions button[data-sort='cost_usd']")
    _first_rows(page, [r["session_id"] for r in by_cost[:10]])
    page.click("#page-next")
    _first_rows(page, [r["session_id"] for r in by_cost[10:]])
    info = page.text_content("#page-info") or ""
    assert info.startswith(f"11–{len(rows)} of {len(rows)}") and "page 2 of 2" in info
    assert page.is_disabled("#page-next") and not page.is_disabled("#page-prev")
    for part in ("timezone=Pacific%2FMarquesas", f"start={day}", f"end={day}", "page=2"):
        assert part in page.url, (part, page.url)
    tab.check_layout(tmp_path / f"marquesas-{width}.png")
    page.reload()
    tab.wait_loaded(1)
    assert page.input_value("#f-timezone") == MARQUESAS
    assert page.input_value("#f-start") == day
    assert page.text_content("#total-sessions") == str(len(rows))
    _first_rows(page, [r["session_id"] for r in by_cost[10:]])
    page.click("#sessions button[data-sort='cost_usd']")  # again: cheapest first, page 1
    assert "dir=asc" in page.url and "page=" not in page.url
    _first_rows(page, [r["session_id"] for r in by_cost[::-1][:10]])
    page.click("#page-next")
    _first_rows(page, [r["session_id"] for r in by_cost[::-1][10:]])
    page.click("#page-prev")
    assert "page=" not in page.url
    _first_rows(page, [r["session_id"] for r in by_cost[::-1][:10]])
    assert tab.errors == []
    tab.close()


def test_the_active_block_and_its_projection_are_named(
    browser: Any, projects_dir: Path, server_factory: Any, tmp_path: Path
) -> None:
    """Usage of the last hour (direct mode, the transcripts themselves) is an active block;
    the block view says what it holds and what it is projected to reach."""
    source = next(projects_dir.rglob("short.jsonl"))
    usage = [
        doc
        for doc in map(json.loads, source.read_text().splitlines())
        if doc.get("type") == "assistant" and (doc.get("message") or {}).get("usage")
    ]
    live = tmp_path / "projects" / "-home-user-projects-live"
    live.mkdir(parents=True)
    now = datetime.now(UTC)
    with (live / "live.jsonl").open("w") as f:
        for i, doc in enumerate(usage[:4]):
            doc["timestamp"] = (now - timedelta(minutes=40 - 10 * i)).isoformat()[:23] + "Z"
            doc["message"]["id"], doc["requestId"] = f"msg_live_{i}", f"req_live_{i}"
            f.write(json.dumps(doc) + "\n")
    server = server_factory("--source", "direct", "--source-dir", str(tmp_path / "projects"))
    tab = ReportTab(browser, 420)
    tab.open(server.base + "/?period=blocks")
    note = tab.page.text_content("#range") or ""
    assert note.startswith("1 five-hour block") and "active block:" in note, note
    assert "projected by" in note
    tab.charts()
    tab.check_layout(tmp_path / "active-420.png")
    assert tab.errors == []
    tab.close()
