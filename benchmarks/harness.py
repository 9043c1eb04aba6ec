"""Shared pieces of the benchmarks: context, results, measuring a child process, tables.

A benchmark is a function ``run(ctx: BenchContext) -> list[Result]`` in a module of
this folder, registered by name in ``run.py``. It gets a generated corpus (with
its manifest) and the options, runs whatever it measures through
:func:`measure_command` (wall time and peak RSS of the whole process tree), and
returns rows for the shared markdown table plus free-form comparison lines.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BenchOptions:
    """Options every benchmark may read (from ``run.py``'s command line)."""

    context_cleaner: list[str]
    """The command that runs ``context-cleaner`` (a stand-in can replace it)."""
    ccusage: list[str] | None
    """The command that runs ccusage, or None when it is not available or not wanted."""
    repeat: int = 1
    timeout: float = 1800.0


@dataclass
class BenchContext:
    """One corpus and the options, handed to each benchmark."""

    size_label: str
    corpus_dir: Path
    """The folder holding ``projects/`` and ``manifest.json``."""
    manifest: dict[str, object]
    options: BenchOptions

    @property
    def projects_dir(self) -> Path:
        return self.corpus_dir / "projects"

    @property
    def corpus_bytes(self) -> int:
        return int(self.manifest["bytes"])  # type: ignore[call-overload]

    @property
    def corpus_lines(self) -> int:
        return int(self.manifest["lines"])  # type: ignore[call-overload]

    def row(
        self,
        benchmark: str,
        tool: str,
        run: RunResult,
        *,
        throughput: bool = True,
        per_line: bool = False,
        **fields: Any,
    ) -> Result:
        """A result row for ``run`` on this corpus: wall time, MB/s (and lines/s), peak RSS."""
        fields.setdefault("peak_rss_mb", run.peak_rss / 1e6)
        return Result(
            benchmark,
            self.size_label,
            tool,
            wall_s=run.wall_s,
            mb_per_s=self.corpus_bytes / 1e6 / run.wall_s if throughput else None,
            lines_per_s=self.corpus_lines / run.wall_s if per_line else None,
            **fields,
        )


@dataclass
class Result:
    """One row of the results table."""

    benchmark: str
    corpus: str
    tool: str
    wall_s: float | None = None
    mb_per_s: float | None = None
    lines_per_s: float | None = None
    peak_rss_mb: float | None = None
    check: str = ""
    """Correctness verdict, e.g. ``= manifest`` or ``MISMATCH``; empty when not applicable."""
    notes: str = ""
    failed: bool = False
    """True when the run failed or gave a wrong answer (``run.py`` then exits non-zero)."""
    comparisons: list[str] = field(default_factory=list)
    """Lines printed under the table (ratios, mismatching fields)."""


@dataclass
class RunResult:
    """What :func:`measure_command` observed."""

    returncode: int
    stdout: bytes
    stderr: bytes
    wall_s: float
    peak_tree_rss: int
    """Largest sampled sum of RSS over the process and all its descendants, bytes."""
    max_process_rss: int
    """Largest peak RSS (``VmHWM``) of any single process of the tree, bytes."""
    timed_out: bool = False
    peak_tree_pss: int = 0
    """Largest sampled sum of PSS over the tree (shared pages split between their users)."""
    peak_tree_uss: int = 0
    """Largest sampled sum of USS over the tree: the pages no other process maps (private
    memory; a forked worker's pages still shared with its parent are not in it)."""
    peak_tree_private: int = 0
    """Largest sampled private memory of the tree as a run measures its own
    (``observability.process_memory.sample_tree``: the root's anonymous pages, each
    descendant's private dirty pages), sampled from outside every third poll (~30 ms): a
    run's own sampling (at most 4 a second) misses the short peaks inside its commits."""
    cpu_s: float = 0.0
    """User + system CPU seconds of the process and every descendant its tree reaped
    (steadier than wall time on a shared machine; on 2 cores wall >= cpu_s / 2)."""

    @property
    def peak_rss(self) -> int:
        return max(self.peak_tree_rss, self.max_process_rss)

    def private_note(self) -> str:
        """The tree's peak private memory for a result's notes: USS and PSS sums."""
        uss, pss = self.peak_tree_uss / 1e6, self.peak_tree_pss / 1e6
        return f"tree USS {uss:,.0f} MB, PSS {pss:,.0f} MB; CPU {self.cpu_s:.2f} s"


def largest_memory(runs: list[RunResult], into: RunResult) -> RunResult:
    """``into`` with the largest peak memory figures seen in ``runs``."""
    into.peak_tree_rss = max(r.peak_tree_rss for r in runs)
    into.peak_tree_pss = max(r.peak_tree_pss for r in runs)
    into.peak_tree_uss = max(r.peak_tree_uss for r in runs)
    into.peak_tree_private = max(r.peak_tree_private for r in runs)
    return into


def _proc_memory(pid: int) -> tuple[int, int, int]:
    """(current RSS, peak RSS since exec, anonymous RSS) of one process in bytes; zeros
    once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        try:
            rss = psutil.Process(pid).memory_info().rss  # not Linux: no high-water mark
        except psutil.Error:
            return 0, 0, 0
        return rss, rss, rss
    rss = hwm = anon = 0
    for line in status.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith(b"VmHWM:"):
            hwm = int(line.split()[1]) * 1024
        elif line.startswith(b"RssAnon:"):
            anon = int(line.split()[1]) * 1024
    return rss, max(rss, hwm), anon


def _proc_private(pid: int) -> tuple[int, int, int]:
    """(PSS, USS, private dirty) of one process in bytes, from ``/proc/<pid>/smaps_rollup``;
    zeros when it is gone or the kernel has no rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            rollup = f.read()
    except OSError:
        return 0, 0, 0
    pss = uss = dirty = 0
    for line in rollup.splitlines():
        if line.startswith(b"Pss:"):
            pss = int(line.split()[1]) * 1024
        elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            uss += int(line.split()[1]) * 1024
            if line.startswith(b"Private_Dirty:"):
                dirty = int(line.split()[1]) * 1024
    return pss, uss, dirty


class _TreeSampler:
    """Samples the memory of a process and all its descendants.

    The kernel's ``ru_maxrss`` (``wait4``) cannot be used: a child started with
    vfork/fork inherits the parent's high-water mark at exec, so it reports at least
    the benchmark harness's own size. ``VmHWM`` in ``/proc/<pid>/status`` is reset at
    exec, so it is exact per process; the tree's simultaneous peak is the largest
    sampled sum of ``VmRSS``. Descendants are rediscovered every few samples only,
    because walking the process table costs about a millisecond.
    """

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.pids: set[int] = {pid}
        self.peak_sum = 0
        self.peak_pss = 0
        self.peak_uss = 0
        self.peak_private = 0
        self.peak_process: dict[int, int] = {}
        self._n = 0

    def sample(self) -> None:
        if self._n % 5 == 0:
            with contextlib.suppress(psutil.Error):
                self.pids |= {c.pid for c in self.root.children(recursive=True)}
        private = self._n % 3 == 0  # the rollup walks every mapping: every third sample
        self._n += 1
        total = pss = uss = own = 0
        for pid in list(self.pids):
            rss, hwm, anon = _proc_memory(pid)
            if not rss and not hwm:
                self.pids.discard(pid)
                continue
            total += rss
            if hwm > self.peak_process.get(pid, 0):
                self.peak_process[pid] = hwm
            if private:
                p, u, dirty = _proc_private(pid)
                pss += p
                uss += u
                # As a run measures its own (observability.process_memory.sample_tree):
                # the root's anonymous pages, each descendant's private dirty pages.
                own += anon if pid == self.root.pid else dirty
        self.peak_private = max(self.peak_private, own)
        self.peak_sum = max(self.peak_sum, total)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_uss = max(self.peak_uss, uss)

    def kill_all(self) -> None:
        with contextlib.suppress(psutil.Error):
            for child in self.root.children(recursive=True):
                child.kill()
            self.root.kill()


def measure_command(
    cmd: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800.0,
    poll_interval: float = 0.01,
) -> RunResult:
    """Run ``cmd``, returning its output, wall time and peak memory (see :class:`_TreeSampler`)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        popen = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        sampler = _TreeSampler(popen.pid)
        timed_out = False
        while True:
            # The sample comes first: once the process is reaped its /proc entry is gone.
            sampler.sample()
            if popen.poll() is not None:
                wall = time.perf_counter() - started
                break
            if not timed_out and time.perf_counter() - started > timeout:
                timed_out = True
                sampler.kill_all()
            time.sleep(poll_interval)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        out.seek(0)
        err.seek(0)
        return RunResult(
            returncode=popen.returncode,
            stdout=out.read(),
            stderr=err.read(),
            wall_s=wall,
            peak_tree_rss=sampler.peak_sum,
            max_process_rss=max(sampler.peak_process.values(), default=0),
            timed_out=timed_out,
            peak_tree_pss=sampler.peak_pss,
            peak_tree_uss=sampler.peak_uss,
            peak_tree_private=sampler.peak_private,
            cpu_s=cpu,
        )


def time_command(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1800.0
) -> float | None:
    """The wall seconds of ``cmd`` with nothing sampling it (None when it failed).

    :func:`measure_command` reads each process's ``/proc`` status every 10 ms and its
    ``smaps_rollup`` every 30 ms: on two cores that takes CPU from what it measures, the
    more the larger the mappings it walks (the embedded engine's library is 555 MB).
    """
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - started
    return wall if done.returncode == 0 else None


def measure_repeated(
    cmd: list[str], repeat: int, env: dict[str, str] | None = None, timeout: float = 1800.0
) -> RunResult:
    """Run ``cmd`` ``repeat`` times; the fastest run, with the largest peak RSS seen."""
    runs = [measure_command(cmd, env=env, timeout=timeout) for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r.wall_s)
    failed = [r for r in runs if r.returncode != 0]
    chosen = failed[0] if failed else best
    chosen.max_process_rss = max(r.max_process_rss for r in runs)
    return largest_memory(runs, chosen)


def warm_page_cache(root: Path) -> tuple[int, float]:
    """Read every file below ``root`` once; returns (bytes read, seconds)."""
    started = time.perf_counter()
    total = 0
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                while n := f.readinto(view):
                    total += n
    return total, time.perf_counter() - started


def find_ccusage() -> list[str] | None:
    """ccusage's command: ``$CCUSAGE_BIN``, the tools folder, ``PATH``, then ``./node_modules``."""
    candidates: list[str | None] = [
        os.environ.get("CCUSAGE_BIN"),
        "/work/tools/node_modules/.bin/ccusage",
        str(REPO_ROOT / ".tools" / "node_modules" / ".bin" / "ccusage"),  # the tests' install
        shutil.which("ccusage"),
        str(REPO_ROOT / "node_modules" / ".bin" / "ccusage"),
        "./node_modules/.bin/ccusage",
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return [c]
    return None


def find_context_cleaner() -> list[str]:
    """``$CONTEXT_CLEANER_BIN``, else the venv's console script, else the one on PATH."""
    env = os.environ.get("CONTEXT_CLEANER_BIN")
    if env:
        return env.split()
    venv = REPO_ROOT / ".venv" / "bin" / "context-cleaner"
    if venv.exists():
        return [str(venv)]
    return [shutil.which("context-cleaner") or str(venv)]


def compile_package() -> str:
    """Bring the bytecode of the package under test up to date, as a user's install has it.

    An editable install writes ``.pyc`` files on first import, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (as in some sandboxes): then every measured run
    compiled the modules changed since from source, ~0.1 s of a migration's start on
    20,000 small files. Returns what was done, for the report's header.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("context_cleaner")
    if spec is None or not spec.submodule_search_locations:
        return "context_cleaner not importable here: bytecode left as it is"
    folder = Path(next(iter(spec.submodule_search_locations)))
    ok = compileall.compile_dir(folder, quiet=1)
    return f"compiled {folder}" if ok else f"compiling {folder} failed (see above)"


def machine_line() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM, "
        f"Python {sys.version.split()[0]}"
    )


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def markdown_table(results: list[Result]) -> str:
    head = (
        "| Benchmark | Corpus | Tool | Wall (s) | MB/s | Lines/s | Peak RSS (MB) | Check "
        "| Notes |\n"
        "|---|---|---|---:|---:|---:|---:|---|---|\n"
    )
    rows = [
        f"| {r.benchmark} | {r.corpus} | {r.tool} | {_fmt(r.wall_s, 2)} | {_fmt(r.mb_per_s, 0)} "
        f"| {_fmt(r.lines_per_s, 0)} | {_fmt(r.peak_rss_mb, 0)} | {r.check} | {r.notes} |"
        for r in results
    ]
    return head + "\n".join(rows) + "\n"
