"""The page in a real headless Chromium (Debian's ``chromium``) against a real server.

Playwright drives ``/usr/bin/chromium`` (never a downloaded browser). ``make test``
installs chromium when it is missing; these tests are skipped only when it is
still not there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import TOKEN, Server, cli_env, migrate_copy, run_cli

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SONNET = "claude-sonnet-4-5-20250929"
SONNET_TOKENS = 42176 + 34159 + 15 + 3  # ccusage's modelBreakdowns for the fixtures

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: `make test` installs it (apt-get install chromium)",
    ),
]

#: (canvas id, the RGB of bars that only data can paint there)
CHARTS = {
    "chart-days": (118, 183, 178),
    "chart-cost": (89, 161, 79),
    "chart-models": (47, 111, 223),
    "chart-projects": (47, 111, 223),
}

_CANVAS_JS = """([id, rgb]) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0, bars = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) painted++;
    if (d[i] === rgb[0] && d[i + 1] === rgb[1] && d[i + 2] === rgb[2] && d[i + 3] === 255) bars++;
  }
  const chart = Chart.getChart(c);
  const points = chart.data.datasets.reduce((n, ds) => n + ds.data.filter((v) => v > 0).length, 0);
  return {painted, bars, points, dataUrl: c.toDataURL().length};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(projects_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A migrated copy of the fixtures served by a real dashboard."""
    copy, url = migrate_copy(projects_dir, tmp_path_factory.mktemp("browser"))
    server = Server("--clickhouse-url", url).wait_ready()
    yield server, url, copy
    server.stop()


def database_total(url: str) -> int:
    """The total from the usage rows (``status --json``), not from the dashboard's rollup."""
    done = run_cli("status", "--clickhouse-url", url, "--json")
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["totals"]["total_tokens"])


class Page:
    """A browser tab that records console errors and waits for the dashboard to load."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, url: str) -> Page:
        self.page.goto(url)
        return self.wait_loaded(1)

    def wait_loaded(self, loads: int) -> Page:
        """Wait until the page finished its ``loads``-th load (selectors only: the page's CSP
        forbids the eval that ``wait_for_function`` needs)."""
        self.page.wait_for_selector(
            f'body[data-state="ready"][data-loads="{loads}"], body[data-state="error"]',
            state="attached",
            timeout=30_000,
        )
        state = self.page.evaluate("document.body.dataset.state")
        assert state == "ready", self.page.text_content("#error")
        return self

    def wait_rows(self, table: str, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        rows = self.page.locator(f"#{table} tbody tr")
        while rows.count() != count:
            assert time.monotonic() < deadline, f"{table}: {rows.count()} rows, want {count}"
            time.sleep(0.05)

    def headline(self) -> int:
        return int(self.page.get_attribute("#total-tokens", "data-value"))

    def close(self) -> None:
        self.page.close()


def test_page_shows_the_database_total_and_draws_every_chart(
    browser: Any, site: Any, tmp_path: Path
) -> None:
    server, url, _copy = site
    expected = database_total(url)
    assert expected == 15_537_336
    tab = Page(browser).open(server.base + "/")
    page = tab.page
    assert tab.headline() == expected
    assert page.text_content("#total-tokens") == f"{expected:,}"
    assert page.text_content("#total-cost").startswith("$")
    assert page.is_hidden("#banner") and page.is_hidden("#error")
    for canvas, rgb in CHARTS.items():
        drawn = page.evaluate(_CANVAS_JS, [canvas, list(rgb)])
        assert drawn["points"] > 0, canvas
        assert drawn["bars"] > 100, (canvas, drawn)
        assert drawn["dataUrl"] > 5_000, (canvas, drawn)
    assert page.locator("#sessions tbody tr").count() == 3
    assert page.locator("#runs tbody tr").count() >= 1
    assert "completed" in page.text_content("#runs tbody")
    assert "passed" in page.text_content("#freshness")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert tab.errors == []
    tab.close()


def test_a_filter_changes_the_numbers(browser: Any, site: Any, tmp_path: Path) -> None:
    server, _url, _copy = site
    tab = Page(browser).open(server.base + "/")
    page = tab.page
    total = tab.headline()
    page.select_option("#f-model", SONNET)
    page.click("#f-apply")
    tab.wait_loaded(2)
    assert tab.headline() == SONNET_TOKENS != total
    assert f"model={SONNET}" in page.url
    page.click("#f-reset")
    tab.wait_loaded(3)
    assert tab.headline() == total
    tab.wait_rows("sessions", 3)
    page.fill("#session-search", "short")
    tab.wait_rows("sessions", 1)
    assert page.text_content("#sessions tbody td") == "short"
    assert "search=short" in page.url
    page.fill("#f-start", "2026-02-11")
    page.click("#f-apply")
    tab.wait_loaded(4)
    assert tab.headline() == 15_405_777
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)
    tab.page.goto(server.base + f"/?model={SONNET}")  # filters live in the URL
    tab.wait_loaded(1)
    assert tab.headline() == SONNET_TOKENS
    assert tab.errors == []
    tab.close()


def test_direct_mode_shows_the_rollback_banner(
    browser: Any, site: Any, server_factory: Any, tmp_path: Path
) -> None:
    _server, _url, copy = site
    direct = server_factory("--source", "direct", "--source-dir", str(copy))
    tab = Page(browser).open(direct.base + "/")
    assert tab.page.is_visible("#banner")
    assert "Immediate rollback mode" in tab.page.text_content("#banner")
    assert tab.headline() == 15_537_336
    tab.page.screenshot(path=str(tmp_path / "direct.png"), full_page=True)
    assert tab.errors == []
    tab.close()


def test_token_protected_page(browser: Any, site: Any, server_factory: Any) -> None:
    _server, url, _copy = site
    locked = server_factory("--clickhouse-url", url, "--token", TOKEN)
    tab = Page(browser)
    response = tab.page.goto(locked.base + "/")
    assert response.status == 401
    tab.open(locked.base + f"/?token={TOKEN}")
    assert tab.headline() == 15_537_336
    assert [e for e in tab.errors if "401" not in e] == []
    tab.close()


def _usage_line(source: Path) -> dict[str, Any]:
    for line in source.read_text().splitlines():
        doc = json.loads(line)
        message = doc.get("message")
        if doc.get("type") == "assistant" and isinstance(message, dict) and message.get("usage"):
            return doc
    raise AssertionError(f"no usage line in {source}")


def _tokens(usage: dict[str, Any]) -> int:
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens")
    keys += ("cache_read_input_tokens",)
    return sum(int(usage.get(k) or 0) for k in keys)


def test_page_while_a_sync_writes(browser: Any, projects_dir: Path, tmp_path: Path) -> None:
    copy, url = migrate_copy(projects_dir, tmp_path)
    target = next(copy.rglob("short.jsonl"))
    template = _usage_line(target)
    before = database_total(url)
    server = Server("--clickhouse-url", url).wait_ready()
    added = 0
    syncs: list[subprocess.CompletedProcess[str]] = []
    sync_cmd = [sys.executable, "-m", "context_cleaner", "sync"]

    def writer() -> None:
        nonlocal added
        for i in range(2):
            with target.open("a") as f:
                for j in range(2):
                    doc = json.loads(json.dumps(template))
                    doc["message"]["id"] = f"msg_dashboard_sync_{i}_{j}"
                    doc["requestId"] = f"req_dashboard_sync_{i}_{j}"
                    doc["uuid"] = f"00000000-0000-4000-8000-{i:06d}{j:06d}"
                    f.write(json.dumps(doc) + "\n")
                    added += _tokens(doc["message"]["usage"])
            syncs.append(
                subprocess.run(
                    [*sync_cmd, "--source-dir", str(copy), "--clickhouse-url", url, "--json"],
                    env=cli_env(),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )

    tab = Page(browser).open(server.base + "/")
    try:
        thread = threading.Thread(target=writer)
        thread.start()
        seen = []
        reloads = 0
        while thread.is_alive() or reloads < 5:
            tab.page.reload()
            tab.wait_loaded(1)
            seen.append(tab.headline())
            reloads += 1
            time.sleep(0.1)
        thread.join()
        assert [s.returncode for s in syncs] == [0, 0], [s.stderr for s in syncs]
        after = database_total(url)
        assert after == before + added > before
        tab.page.reload()
        tab.wait_loaded(1)
        assert tab.headline() == after
        assert all(before <= v <= after for v in seen)
        assert tab.errors == []
    finally:
        tab.close()
        err = server.stop()
    assert "Traceback" not in err, err


HOLD = """
import sys, time
from pathlib import Path
from context_cleaner.bridge import Database
with Database(sys.argv[1], lock_timeout=120).session() as client:
    client.query("SELECT 1")
    Path(sys.argv[2]).write_text("held")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.02)
"""


def test_page_says_when_its_numbers_are_kept_from_an_earlier_read(
    browser: Any, projects_dir: Path, tmp_path: Path
) -> None:
    """While another process holds the database (a long migration), the page still loads,
    from the answers kept from its last load, and says so and since when."""
    _copy, url = migrate_copy(projects_dir, tmp_path)
    server = Server("--clickhouse-url", url).wait_ready()
    held, release = tmp_path / "held", tmp_path / "release"
    tab = Page(browser).open(server.base + "/")
    holder = None
    try:
        assert tab.page.is_hidden("#stale")
        total = tab.headline()
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, url, str(held), str(release)],
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not held.exists():
            assert holder.poll() is None, holder.communicate()[1]
            assert time.monotonic() < deadline, "the writer never got the database"
            time.sleep(0.05)
        tab.page.reload()
        tab.wait_loaded(1)
        assert tab.headline() == total
        assert tab.page.is_visible("#stale")
        note = tab.page.text_content("#stale") or ""
        assert "The database is busy" in note and f"process {holder.pid}" in note
        assert tab.page.get_attribute("body", "data-stale")
        release.touch()
        assert holder.wait(timeout=60) == 0
        tab.page.reload()
        tab.wait_loaded(1)
        assert tab.page.is_hidden("#stale") and tab.headline() == total
        assert tab.errors == []
    finally:
        release.touch()
        if holder is not None:
            if holder.poll() is None:
                holder.kill()
            holder.communicate(timeout=30)
        tab.close()
        err = server.stop()
    assert "Traceback" not in err, err


def test_page_names_files_deleted_or_replaced_on_disk(
    browser: Any, projects_dir: Path, tmp_path: Path
) -> None:
    """Claude Code deletes old transcripts: the page keeps their totals and says how many
    tracked files are gone or replaced (before, only ``/api/health`` said so), and the
    validation's run counts the files on disk ("4/3 files" before: tracked over compared)."""
    copy, url = migrate_copy(projects_dir, tmp_path)
    total = database_total(url)
    next(copy.rglob("short.jsonl")).unlink()
    heavy = next(copy.rglob("tool_heavy.jsonl"))
    lines = heavy.read_bytes().splitlines(keepends=True)
    replacement = heavy.with_suffix(".new")
    replacement.write_bytes(b"".join(lines[1:6]))  # another file, another head, another inode
    replacement.replace(heavy)
    checked = run_cli("validate", "--clickhouse-url", url)
    assert checked.returncode in (0, 1), checked.stderr
    on_disk = len(list(copy.rglob("*.jsonl")))
    server = Server("--clickhouse-url", url).wait_ready()
    tab = Page(browser).open(server.base + "/")
    try:
        page = tab.page
        assert tab.headline() == total
        facts = " ".join((page.text_content("#freshness") or "").split())
        assert "Deleted from disk1 file(s); their rows are kept" in facts, facts
        assert "Replaced on disk1 file(s)" in facts, facts
        assert f"Files behind1 ({len(b''.join(lines[1:6])):,} bytes)" in facts, facts
        assert "Read failed" not in facts
        row = page.locator("#runs tbody tr", has_text="validate").first
        # Files compared of those on disk: the replaced one's new content is not read yet.
        assert f"{on_disk - 1}/{on_disk} files" in (row.text_content() or "")
        page.screenshot(path=str(tmp_path / "deleted.png"), full_page=True)
        assert tab.errors == []
    finally:
        tab.close()
        server.stop()
