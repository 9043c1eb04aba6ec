"""A month in the life of one machine's database, with real processes and the real engine.

The ``context-cleaner`` CLI runs as subprocesses on a tmp copy of transcripts (sessions
built with the line builders of ``context_cleaner.testing.transcripts.lines``, plus the
real fixtures) while a real dashboard is polled by a client thread throughout:

1. migrate root A;
2. hourly-style syncs while sessions grow (one of them with a last line not finished yet);
3. Claude Code-style cleanup: the oldest files by mtime are deleted, then a sync;
4. a file replaced by a new one with the same name, then a sync;
5. a second root B added and migrated;
6. a ``rollback --mode partial`` SIGKILLed halfway, the database reopened;
7. syncs of both roots.

Every byte ever written is also appended to an archive nobody deletes (one folder per
root and file generation, same relative paths). After each step every total in the
database equals ``context-cleaner analyze --json`` of that archive; at the end
``validate --full-validation --json`` passes and reports the retained history (deleted
files and the earlier generation of the replaced file) as exactly what the archive holds
beyond the files still on disk.

Checks that do not decide whether later steps make sense are collected (``expect``) and
reported together at the end, so one run says everything that is wrong.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.lock import FileLock, lock_path_for, read_holder
from context_cleaner.bridge.snapshot import PAUSE_ENV
from context_cleaner.testing.transcripts.lines import (
    assistant,
    dumps,
    noise_lines,
    progress,
    usage,
    user,
)

from .helpers import (
    REPO,
    bridge,
    cli_command,
    cli_env,
    count_counted,
    dump_tables,
    pick,
)

SEED = 20261205
#: Where the rollback is SIGKILLed, as fractions of its work (the next only while the
#: database is still as before the rollback).
KILL_POINTS = (0.5, 0.8, 0.2, 0.95)
FIXTURES = Path(
    os.environ.get("CONTEXT_CLEANER_FIXTURES", "/work/shared/fixtures/claude-code-transcripts")
)
if not (FIXTURES / "projects").is_dir():
    FIXTURES = REPO / "src" / "context_cleaner" / "sample"
#: Day 0 of the simulated month (the real fixtures are from 2026-02-10, older still).
MONTH_START_MS = int(datetime(2026, 11, 1, 8, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
#: Requests to the dashboard never go through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: The dashboard endpoints the client thread polls back to back.
#: The token keys of a totals mapping (the dashboard's and validation's alike).
DASHBOARD_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
)
POLLED = ("/api/totals", "/api/overview", "/api/freshness", "/api/runs", "/api/health")


# -- the transcripts and the archive of every byte ever written ------------------------------


@dataclass
class Machine:
    """The live transcript roots and the archive of every byte ever written to them."""

    base: Path
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    generation: dict[tuple[str, str], int] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    replaced: list[tuple[str, str, int]] = field(default_factory=list)
    """(root, relative path, generation that was replaced)."""
    message_number: int = 0

    def live(self, root: str) -> Path:
        return self.base / "live" / root / "projects"

    def archive(self, root: str, generation: int) -> Path:
        return self.base / "archive" / f"{root}-gen{generation}" / "projects"

    def archive_roots(self) -> list[Path]:
        return sorted(p for p in (self.base / "archive").glob("*/projects") if p.is_dir())

    def write(self, root: str, rel: str, data: bytes, mtime_ms: int) -> None:
        """Append ``data`` to a live file and to its archive copy; set the file's mtime."""
        gen = self.generation.setdefault((root, rel), 1)
        for path in (self.live(root) / rel, self.archive(root, gen) / rel):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(data)
        os.utime(self.live(root) / rel, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))

    def replace(self, root: str, rel: str, data: bytes, mtime_ms: int) -> None:
        """A new file with the same name (another inode), as an editor's save makes it."""
        old = self.generation[(root, rel)]
        self.replaced.append((root, rel, old))
        self.generation[(root, rel)] = old + 1
        live = self.live(root) / rel
        tmp = live.with_name(live.name + ".new")
        tmp.write_bytes(data)
        os.replace(tmp, live)
        archived = self.archive(root, old + 1) / rel
        archived.parent.mkdir(parents=True, exist_ok=True)
        archived.write_bytes(data)
        os.utime(live, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))

    def delete_older_than(self, root: str, cutoff_ms: int) -> list[str]:
        """Claude Code's cleanup: every transcript whose mtime is older than the cutoff."""
        gone = []
        for path in sorted(self.live(root).rglob("*.jsonl")):
            if path.stat().st_mtime_ns < cutoff_ms * 1_000_000:
                rel = path.relative_to(self.live(root)).as_posix()
                path.unlink()
                self.deleted.append((root, rel))
                gone.append(rel)
        return gone

    def retained_copy(self) -> Path:
        """A folder holding only the bytes that are no longer on disk (per archive root)."""
        out = self.base / "retained"
        shutil.rmtree(out, ignore_errors=True)
        for root, rel in self.deleted:
            src = self.archive(root, self.generation[(root, rel)]) / rel
            dst = out / f"{root}-deleted" / "projects" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        for root, rel, gen in self.replaced:
            dst = out / f"{root}-gen{gen}" / "projects" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.archive(root, gen) / rel, dst)
        return out

    # -- sessions ------------------------------------------------------------------------

    def response(
        self, session: str, ts_ms: int, *, sidechain: bool = False, prefix: str = ""
    ) -> tuple[str, list[bytes]]:
        """One response as Claude Code writes it: a line per content block, partial output
        first, the final usage last."""
        rng = self.rng
        self.message_number += 1
        msg_id = f"msg_{prefix}{session[:8]}_{self.message_number:05d}"
        request_id = f"req_{prefix}{session[:8]}_{self.message_number:05d}"
        final = usage(
            rng.randint(1, 400),
            rng.randint(50, 4000),
            rng.choice([0, rng.randint(100, 30_000)]),
            rng.choice([0, 0, rng.randint(100, 5000)]),
            rng.randint(0, 200_000),
        )
        model = rng.choice(MODELS)
        blocks = rng.randint(1, 3)
        lines = []
        for b in range(blocks):
            u = dict(final)
            if b < blocks - 1:
                u["output_tokens"] = rng.randint(1, 30)
            obj = assistant(
                msg_id=msg_id,
                request_id=request_id,
                usage_obj=u,
                ts_ms=ts_ms + b * 400,
                model=model,
                session=session,
                sidechain=sidechain,
            )
            lines.append(dumps(obj) + b"\n")
        return msg_id, lines

    def session_turns(
        self,
        root: str,
        session: str,
        project: str,
        day: int,
        turns: int,
        *,
        subagent: bool,
        start_minute: int = 0,
    ) -> None:
        """``turns`` user turns of a session on ``day``, appended to its files."""
        rng = self.rng
        main = f"{project}/{session}.jsonl"
        agent = f"{project}/{session}/subagents/agent-a{session[:4]}.jsonl"
        for t in range(turns):
            ts = MONTH_START_MS + day * DAY_MS + (start_minute + t * 3) * 60_000
            out = [dumps(user(f"step {t}: fix the usage report", ts, session)) + b"\n"]
            _, lines = self.response(session, ts + 2000)
            out += lines
            if rng.random() < 0.3:
                out += [dumps(n) + b"\n" for n in rng.sample(noise_lines(ts, session), 2)]
            if subagent and t % 2 == 1:
                # The subagent's response: embedded in the main file's progress line, and
                # written again (sidechain, another request id) in the subagent's file,
                # where rule 4 drops it; plus a sidechain-only response of the subagent.
                msg_id, side = self.response(session, ts + 5000, sidechain=True, prefix="sub")
                embedded = progress(
                    msg_id=msg_id,
                    request_id=f"req_progress_{msg_id}",
                    usage_obj=json.loads(side[-1])["message"]["usage"],
                    ts_ms=ts + 5000,
                    session=session,
                )
                out.append(dumps(embedded) + b"\n")
                _, own = self.response(session, ts + 9000, sidechain=True, prefix="own")
                self.write(root, agent, b"".join(side + own), ts + 9000)
            self.write(root, main, b"".join(out), ts + 20_000)


def session_id(n: int) -> str:
    return f"{n:08d}-7a1c-4e8a-9d55-{n:012d}"


# -- the processes -----------------------------------------------------------------------------


@dataclass
class Cli:
    url: str
    home: Path
    log: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        # HOME is a tmp folder: the machine's own ~/.claude never leaks into the test.
        return cli_env(self.url, HOME=str(self.home))

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            cli_command(*args),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        command = " ".join(args).replace(str(self.home.parent), "<tmp>")
        self.log.append(f"{command}: exit {done.returncode} in {time.monotonic() - started:.1f} s")
        return done

    def json(self, *args: str, ok: bool = True) -> dict[str, Any]:
        done = self.run(*args, "--json")
        if ok:
            assert done.returncode == 0, (
                f"`{' '.join(args)}` exited {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        try:
            return dict(json.loads(done.stdout))
        except ValueError:
            assert not ok, f"`{' '.join(args)}` printed no JSON: {done.stdout[-2000:]}"
            return {
                "exit": done.returncode,
                "stdout": done.stdout[-2000:],
                "stderr": done.stderr[-2000:],
            }

    def start(self, *args: str, **extra_env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli_command(*args),
            env={**self.env(), **extra_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Poller(threading.Thread):
    """A client polling the dashboard back to back; counts answers per phase."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.phase = "start"
        self.answers: Counter[tuple[str, int]] = Counter()
        self.failures: list[str] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for path in POLLED:
                phase = self.phase
                try:
                    with OPENER.open(self.base + path, timeout=60) as r:
                        r.read()
                        self.answers[(phase, r.status)] += 1
                except urllib.error.HTTPError as exc:
                    self.answers[(phase, exc.code)] += 1
                    if exc.code != 503:
                        self.failures.append(
                            f"{phase} {path}: HTTP {exc.code} {exc.read()[:300]!r}"
                        )
                except OSError as exc:
                    self.failures.append(f"{phase} {path}: {exc}")
                    time.sleep(0.2)

    def get(self, path: str) -> dict[str, Any]:
        with OPENER.open(self.base + path, timeout=60) as r:
            return json.loads(r.read())


# -- comparing the database with the archive ---------------------------------------------------


def analysis_of(cli: Cli, roots: list[Path]) -> dict[str, Any]:
    """``context-cleaner analyze --json`` of ``roots`` (an independent reading of the bytes)."""
    args = ["analyze"]
    for r in roots:
        args += ["--source-dir", str(r)]
    return cli.json(*args)


def database_vs(url: str, want: dict[str, Any]) -> list[str]:
    """Every total of the database against an ``analyze --json`` report: the differences."""
    b = bridge(url)
    problems: list[str] = []
    with b.database.held():
        totals = {
            "rows": pick(b.get_migration_totals()),
            "rollup": pick(b.summary_totals()),
        }
        by_session = {r["session"]: pick(r) for r in b.totals_by("session")}
        rows_by_session = {k: pick(v) for k, v in b.detail_totals_by_session().items()}
        by_day = {r["day"]: pick(r) for r in b.totals_by("day")}
        counted = count_counted(b)
    for name, got in totals.items():
        if got != pick(want["totals"]):
            problems.append(f"{name} totals {got} != analysis {pick(want['totals'])}")
    sessions = {s["session_id"]: pick(s) for s in want["sessions"]}
    for name, got_sessions in (("rollup", by_session), ("rows", rows_by_session)):
        if got_sessions != sessions:
            diff = sorted(
                k
                for k in sessions.keys() | got_sessions.keys()
                if sessions.get(k) != got_sessions.get(k)
            )
            problems.append(f"{name} per-session totals differ for sessions {diff}")
    days = {d["date"]: pick(d) for d in want["days"]}
    if by_day != days:
        diff = sorted(k for k in days.keys() | by_day.keys() if days.get(k) != by_day.get(k))
        problems.append(f"per-day totals differ on days {diff}")
    if counted != want["totals"]["records"]:
        problems.append(f"counted records {counted} != analysis {want['totals']['records']}")
    return problems


def total_tokens(url: str) -> int:
    return int(bridge(url).get_migration_totals()["total_tokens"])


def copy_database(url: str, dest: Path) -> None:
    """A byte copy of an embedded database, taken while holding its lock."""
    path = Path(url.removeprefix("chdb://"))
    with FileLock(lock_path_for(path), description="copy for the test"):
        shutil.copytree(path, dest, symlinks=True)  # chDB links metadata/<db> into store/


# -- the month ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1800)  # ~4 min alone on 2 busy cores; the default 600 s is too tight
def test_a_month_in_the_life(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    url = f"chdb://{tmp_path / 'db'}"
    cli = Cli(url, home)
    failures: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            failures.append(what)

    def check_against_archive(step: str) -> dict[str, Any]:
        want = analysis_of(cli, machine.archive_roots())
        for problem in database_vs(url, want):
            failures.append(f"{step}: {problem}")
        return want

    # Root A: the real fixtures (from February: the oldest files) and ten days of sessions.
    fixture_mtime = int(datetime(2026, 2, 11, tzinfo=UTC).timestamp() * 1000)
    for path in sorted((FIXTURES / "projects").rglob("*.jsonl")):
        rel = path.relative_to(FIXTURES / "projects").as_posix()
        machine.write("A", rel, path.read_bytes(), fixture_mtime)
    for day in range(10):
        project = f"-home-u-proj{day % 3}"
        machine.session_turns("A", session_id(day), project, day, 8, subagent=day % 3 == 0)

    # The dashboard runs from the start (on a database that does not exist yet).
    port = free_port()
    dashboard = cli.start("dashboard", "--port", str(port), "--clickhouse-url", url)
    poller = Poller(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert dashboard.poll() is None, dashboard.communicate()
            try:
                poller.get("/api/health")
                break
            except urllib.error.HTTPError:
                break  # it answers (maybe "no database yet"): listening
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
                time.sleep(0.2)
        poller.start()
        _month(machine, cli, url, poller, expect, check_against_archive)
    finally:
        poller.stop_event.set()
        poller.join(timeout=90)
        alive = dashboard.poll() is None
        if alive:
            dashboard.terminate()
        try:
            _, dash_err = dashboard.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            _, dash_err = dashboard.communicate()
    expect(alive, f"the dashboard died during the month: {dash_err[-2000:]}")
    expect(
        not poller.failures,
        "dashboard answers other than 200/503:\n  " + "\n  ".join(poller.failures[:20]),
    )
    phases = {phase for phase, _ in poller.answers}
    for phase in sorted(phases):
        expect(poller.answers[(phase, 200)] > 0, f"the dashboard never answered during {phase}")
    assert not failures, (
        f"{len(failures)} check(s) failed:\n- "
        + "\n- ".join(failures)
        + "\n\nruns:\n  "
        + "\n  ".join(cli.log)
        + f"\n\ndashboard answers: {dict(poller.answers)}"
    )


def _month(
    machine: Machine,
    cli: Cli,
    url: str,
    poller: Poller,
    expect: Any,
    check_against_archive: Any,
) -> None:
    root_a, root_b = machine.live("A"), machine.live("B")

    # 1. The first migration of root A.
    poller.phase = "1 migrate A"
    first = cli.json(
        "migrate", "--source-dir", str(root_a), "--batch-size", "3", "--checkpoint-interval", "4"
    )
    expect(first["success"] is True, f"1: migrate A success={first['success']}")
    expect(
        first["validation_passed"] is True,
        f"1: migrate A validation_passed={first['validation_passed']}: "
        f"{first['consistency_check_results'].get('explanations')}",
    )
    check_against_archive("1 migrate A")

    # 2. Hourly-style syncs while the newest sessions grow and a new one starts each hour;
    # the first leaves a last line not finished yet, the second finishes it.
    torn_rel = f"-home-u-proj1/{session_id(7)}.jsonl"
    pending_line = b""
    for hour in range(3):
        poller.phase = f"2 sync {hour}"
        last_ms = MONTH_START_MS + (10 + hour) * DAY_MS + 700 * 60_000
        if hour == 1:  # the line left unfinished an hour ago ends now
            machine.write("A", torn_rel, pending_line[50:], last_ms)
        for n in (7, 8, 9):
            machine.session_turns(
                "A",
                session_id(n),
                f"-home-u-proj{n % 3}",
                10 + hour,
                2,
                subagent=n % 3 == 0,
                start_minute=600,
            )
        machine.session_turns(
            "A", session_id(10 + hour), "-home-u-proj1", 10 + hour, 4, subagent=False
        )
        if hour == 0:  # a response still being written: its last line has no newline yet
            _, lines = machine.response(session_id(7), last_ms)
            pending_line = lines[-1]
            machine.write("A", torn_rel, b"".join(lines[:-1]) + pending_line[:50], last_ms)
        before = total_tokens(url)
        synced = cli.json("sync", "--source-dir", str(root_a))
        after = total_tokens(url)
        expect(synced["success"] is True, f"2.{hour}: sync success={synced['success']}")
        expect(
            synced["tokens_added"] == after - before,
            f"2.{hour}: sync tokens_added={synced['tokens_added']} but the database grew "
            f"by {after - before}",
        )
        check_against_archive(f"2 sync {hour}")

    # 3. Claude Code's cleanup: the oldest files (the fixtures and days 0-3) are deleted.
    poller.phase = "3 cleanup"
    cutoff = MONTH_START_MS + 4 * DAY_MS
    gone = machine.delete_older_than("A", cutoff)
    assert len(gone) >= 5 + 4, gone  # the five fixture files and four sessions at least
    before = total_tokens(url)
    synced = cli.json("sync", "--source-dir", str(root_a))
    expect(synced["success"] is True, f"3: sync after cleanup success={synced['success']}")
    expect(
        synced["files_deleted"] == len(gone),
        f"3: sync files_deleted={synced['files_deleted']}, {len(gone)} were deleted",
    )
    expect(total_tokens(url) == before, "3: the sync after the cleanup changed the totals")
    check_against_archive("3 cleanup")
    validated = cli.json("validate", "--source-dir", str(root_a), ok=False)
    expect(
        validated.get("passed") is True,
        f"3: validate after cleanup passed={validated.get('passed')}: "
        f"{validated.get('explanations')}",
    )
    retained = validated.get("retained")
    expect(
        isinstance(retained, dict) and retained.get("files") == len(gone),
        f"3: validate reports retained={retained!r}, expected {len(gone)} deleted files",
    )

    # 4. A file replaced by a new one with the same name (new content, new inode).
    poller.phase = "4 replace"
    replaced_rel = f"-home-u-proj2/{session_id(5)}.jsonl"
    content = b""
    for t in range(5):
        ts = MONTH_START_MS + 13 * DAY_MS + t * 90_000
        _, lines = machine.response(session_id(5), ts, prefix="gen2")
        content += b"".join(lines)
    machine.replace("A", replaced_rel, content, MONTH_START_MS + 13 * DAY_MS + 600_000)
    synced = cli.json("sync", "--source-dir", str(root_a))
    expect(synced["success"] is True, f"4: sync after replace success={synced['success']}")
    expect(synced["files_reset"] == 1, f"4: sync files_reset={synced['files_reset']}, expected 1")
    check_against_archive("4 replace")

    # 5. A second root, migrated into the same database.
    poller.phase = "5 migrate B"
    for k in range(4):
        n = 20 + k
        machine.session_turns(
            "B", session_id(n), f"-srv-proj{k % 2}", 14 + k // 2, 6, subagent=k % 2 == 0
        )
    second = cli.json(
        "migrate",
        "--source-dir",
        str(root_b),
        "--batch-size",
        "1",
        "--checkpoint-interval",
        "2",
        ok=False,
    )
    expect(second.get("success") is True, f"5: migrate B success={second.get('success')}")
    expect(
        second.get("validation_passed") is True,
        f"5: migrate B validation_passed={second.get('validation_passed')}: "
        f"{(second.get('consistency_check_results') or {}).get('explanations')}",
    )
    checkpoints = second.get("checkpoints") or []
    expect(
        len(checkpoints) >= 2,
        f"5: migrate B --checkpoint-interval 2 over 6 files lists checkpoints {checkpoints}",
    )
    everything = check_against_archive("5 migrate B")
    only_b = cli.json("validate", "--source-dir", str(root_b), ok=False)
    # Scoped to B, every row of root A (on disk or not) is retained history of another root.
    b_now = analysis_of(cli, [root_b])["totals"]["total_tokens"]
    a_rows = everything["totals"]["total_tokens"] - b_now
    b_retained = only_b.get("retained")
    b_retained_tokens = (
        (b_retained.get("totals") or {}).get("total_tokens")
        if isinstance(b_retained, dict)
        else b_retained
    )
    expect(
        b_retained_tokens == a_rows,
        f"5: validate --source-dir B reports retained={b_retained!r}, expected root A's "
        f"{a_rows} tokens",
    )
    expect(
        only_b.get("passed") is True,
        f"5: validate --source-dir B passed={only_b.get('passed')}: {only_b.get('explanations')}",
    )
    expect(
        not any("no longer on disk" in e for e in only_b.get("explanations", [])),
        f"5: validate --source-dir B calls A's files gone: {only_b.get('explanations')}",
    )

    # 6. A partial rollback of B's migration, SIGKILLed halfway; the database reopened.
    poller.phase = "6 rollback killed"
    before_state = dump_tables(url)
    if checkpoints:
        mode: tuple[str, ...] = ("--mode", "partial", "--to-checkpoint", checkpoints[0])
    else:
        # No checkpoint to return to (that failure is recorded above): the crash safety of a
        # rollback is still tested, on the complete rollback of B's migration.
        mode = ("--mode", "complete")
    rollback_args = (
        "rollback",
        "--migration-id",
        second["migration_id"],
        *mode,
        "--yes",
        "--json",
    )
    db_path = Path(url.removeprefix("chdb://"))
    copy = db_path.with_name("db-rolled-back")
    copy_database(url, copy)
    reference = Cli(f"chdb://{copy}", cli.home)
    completed = reference.json(*rollback_args[:-1])
    after_state = dump_tables(f"chdb://{copy}")
    work_s = float(completed["duration_seconds"])
    lock = lock_path_for(db_path)
    # Killed halfway: first for certain, stopped by the rollback's own pause hook before
    # its second write (its plan is journaled, nothing else done yet); then, while the
    # database is still as before, at moments of its work timed from the reference run
    # (those may come too late for a fast rollback: then it simply finished).
    for attempt, fraction in enumerate(KILL_POINTS):
        pause = {PAUSE_ENV: "2"} if attempt == 0 else {}
        proc = cli.start(*rollback_args, **pause)
        deadline = time.monotonic() + 60
        if pause:
            assert proc.stderr is not None
            seen = ""
            while "paused before write" not in seen and proc.poll() is None:
                assert time.monotonic() < deadline, "the rollback never paused"
                seen += proc.stderr.readline()
        else:
            while read_holder(lock).pid != proc.pid and proc.poll() is None:
                assert time.monotonic() < deadline, "the rollback never took the database"
                time.sleep(0.001)
            time.sleep(work_s * fraction)
        # Kill it while it holds the database (it may open it more than once).
        while proc.poll() is None and read_holder(lock).pid != proc.pid:
            time.sleep(0.001)
        holding = read_holder(lock).pid == proc.pid
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        expect(
            killed or attempt > 0,
            f"6: the rollback {mode} ended before the kill ({work_s:.2f} s of work)",
        )
        reopened = cli.json("status")
        state = dump_tables(url)
        landed = {True: "before", False: "after"}.get(state == before_state, "")
        landed = landed if state in (before_state, after_state) else "neither"
        cli.log.append(
            f"rollback {mode} killed={killed} holding the database={holding} "
            f"{work_s * fraction:.2f} s into {work_s:.2f} s of work: state {landed}"
        )
        expect(
            state in (before_state, after_state),
            f"6: after a rollback {mode} SIGKILLed {work_s * fraction:.2f} s into its work "
            "the tables are neither as before nor after the rollback: "
            + _which_tables_differ(state, before_state, after_state),
        )
        running = [r for r in reopened["runs"] if r["status"] == "running"]
        expect(not running, f"6: runs still shown running after the kill: {running}")
        if landed != "before" or not killed:
            break

    # 7. Syncs of both roots after the reopen: everything back.
    poller.phase = "7 sync both"
    for root in (root_a, root_b):
        synced = cli.json("sync", "--source-dir", str(root))
        expect(synced["success"] is True, f"7: sync {root.parent.name} success={synced['success']}")
    final = check_against_archive("7 sync both")

    # The end: full validation of every root the database tracks passes and reports the
    # retained history as exactly the archive's bytes that are no longer on disk.
    poller.phase = "end"
    report = cli.json("validate", "--full-validation", ok=False)
    expect(
        report.get("passed") is True,
        f"end: validate --full-validation passed={report.get('passed')}: "
        f"{report.get('explanations')}",
    )
    retained_want = analysis_of(cli, sorted(machine.retained_copy().glob("*/projects")))
    on_disk_want = analysis_of(cli, [root_a, root_b])
    expect(
        pick(on_disk_want["totals"])["total_tokens"] + pick(retained_want["totals"])["total_tokens"]
        == pick(final["totals"])["total_tokens"],
        "the test's premise: on-disk + retained = all bytes ever written",
    )
    retained = report.get("retained")
    # `validate --json`'s `retained`: totals, records, files, sessions, oldest/newest day
    # (docs/operations.md, "Retained history").
    want = {
        "totals": {k: retained_want["totals"][k] for k in DASHBOARD_KEYS},
        "records": retained_want["totals"]["records"],
        "files": len(machine.deleted) + len(machine.replaced),
        "sessions": len(retained_want["sessions"]),
        "oldest_day": min(d["date"] for d in retained_want["days"]),
        "newest_day": max(d["date"] for d in retained_want["days"]),
    }
    got: Any = retained
    if isinstance(retained, dict):
        got = {k: retained.get(k) for k in want}
        if isinstance(got["totals"], dict):
            got["totals"] = {k: got["totals"].get(k) for k in DASHBOARD_KEYS}
    expect(got == want, f"end: validate reports retained={retained!r}, expected {want}")
    expect(report.get("token_variance") == 0, f"end: token_variance={report.get('token_variance')}")

    # The dashboard shows the database's totals (within a few seconds of the last write).
    deadline = time.monotonic() + 15
    shown: Any = None
    while time.monotonic() < deadline:
        try:
            body = poller.get("/api/totals")["totals"]
            shown = {k: body.get(k) for k in DASHBOARD_KEYS}
        except OSError as exc:
            shown = str(exc)
        if shown == {k: final["totals"][k] for k in DASHBOARD_KEYS}:
            break
        time.sleep(0.5)
    expect(
        shown == {k: final["totals"][k] for k in DASHBOARD_KEYS},
        f"end: the dashboard shows {shown}, the archive holds {pick(final['totals'])}",
    )


def _which_tables_differ(
    state: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> str:
    parts = []
    for table in state:
        marks = []
        if state[table] != before[table]:
            marks.append("differs from before")
        if state[table] != after[table]:
            marks.append("differs from after")
        parts.append(f"{table} {len(state[table] or [])} rows: {', '.join(marks) or 'equal'}")
    return "; ".join(parts)
