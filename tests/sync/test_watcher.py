"""The watcher in this process, on one small transcript: an initial sync at start, a
change sync for an appended line, and a clean stop (the full watch is tested with real
processes in test_watch_process.py)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.watch import Watcher
from context_cleaner.settings import Settings


def _line(n: int, output_tokens: int) -> bytes:
    message = {
        "id": f"msg_watch_{n}",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-6",
        "content": [{"type": "text", "text": "ok"}],
        "usage": {"input_tokens": 10, "output_tokens": output_tokens},
    }
    line = {
        "type": "assistant",
        "sessionId": "watch-0000",
        "timestamp": f"2026-02-10T10:00:0{n}.000Z",
        "requestId": f"req_watch_{n}",
        "message": message,
    }
    return json.dumps(line).encode() + b"\n"


class _Lines(io.StringIO):
    """The watcher's JSON output; ``seen(n)`` waits for its n-th line."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
        return written

    def seen(self, n: int, timeout: float = 60) -> list[dict[str, Any]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.getvalue().splitlines()) >= n, timeout)
            return [json.loads(line) for line in self.getvalue().splitlines()]


def test_a_watcher_syncs_at_start_then_each_appended_line_then_stops(tmp_path: Path) -> None:
    transcript = tmp_path / "projects" / "-home-u-watch" / "watch-0000.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_bytes(_line(1, 5))
    out = _Lines()
    watcher = Watcher(
        HistoricalDataMigrator(f"chdb://{tmp_path}/db", parallel_workers=1),
        Settings(source_dirs=(str(tmp_path / "projects"),), debounce=0.0),
        as_json=True,
        out=out,
        err=io.StringIO(),
    )
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(watcher.run()))
    thread.start()
    try:
        initial = out.seen(1)[0]
        assert initial["trigger"] == "initial" and initial["tokens_added"] == 15, initial
        with transcript.open("ab") as f:
            f.write(_line(2, 7))
        synced = out.seen(2)
        assert sum(s["tokens_added"] for s in synced) == 15 + 17, synced
        assert {s["trigger"] for s in synced[1:]} <= {"change", "full"}, synced
    finally:
        watcher.stop.set()
        thread.join(timeout=60)
    assert codes == [0]


def test_a_watcher_whose_poller_fails_still_syncs_by_full_walks(tmp_path: Path) -> None:
    """A symlink loop makes the poller give up (and a name that is not UTF-8 stops file
    events): the watcher says so once and goes on with full syncs of its own walk, so an
    appended line is still counted (before, it retried the poller forever, syncing nothing)."""
    projects = tmp_path / "projects"
    transcript = projects / "-home-u-watch" / "watch-0000.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_bytes(_line(1, 5))
    (projects / "loop").symlink_to("..")
    out, err = _Lines(), io.StringIO()
    watcher = Watcher(
        HistoricalDataMigrator(f"chdb://{tmp_path}/db", parallel_workers=1),
        Settings(source_dirs=(str(projects),), debounce=0.0, watch_polling=True),
        as_json=True,
        out=out,
        err=err,
    )
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(watcher.run()))
    thread.start()
    try:
        assert out.seen(1)[0]["tokens_added"] == 15
        with transcript.open("ab") as f:
            f.write(_line(2, 7))
        synced = out.seen(2, timeout=30)
        assert sum(s["tokens_added"] for s in synced) == 15 + 17, (synced, err.getvalue())
        assert synced[-1]["trigger"] == "full", synced
    finally:
        watcher.stop.set()
        thread.join(timeout=60)
    assert codes == [0]
    said = err.getvalue()
    assert said.count("error: watching failed (") == 1, said
    assert "File system loop" in said and "a full sync every 5 s instead" in said, said
