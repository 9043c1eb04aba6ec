"""Kept and shared answers (dashboard/answers.py), with real threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from context_cleaner.bridge.exceptions import DatabaseLockedError, DatabaseUnavailableError
from context_cleaner.dashboard.answers import Answers


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.now


def busy() -> DatabaseLockedError:
    return DatabaseLockedError(
        "in use", path="/db", holder_pid=4242, holder_command="context-cleaner migrate"
    )


def test_equal_concurrent_requests_share_one_read() -> None:
    answers = Answers()
    entered, release = threading.Event(), threading.Event()
    reads: list[float | None] = []

    def read(wait: float | None) -> dict[str, Any]:
        reads.append(wait)
        entered.set()
        release.wait(30)
        return {"total": 7}

    got: list[dict[str, Any]] = []
    first = threading.Thread(target=lambda: got.append(answers.get("/api/totals?", read)))
    first.start()
    assert entered.wait(30)
    others = [
        threading.Thread(target=lambda: got.append(answers.get("/api/totals?", read)))
        for _ in range(3)
    ]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(30)
    assert reads == [None]  # one read, with the usual wait: nothing was kept yet
    assert len(got) == 4 and all(a == got[0] for a in got)
    assert got[0]["total"] == 7 and got[0]["stale"] is False and got[0]["as_of"].endswith("Z")


def test_a_kept_answer_is_served_marked_stale_while_the_database_is_busy() -> None:
    clock = Clock()
    answers = Answers(patience=0.5, stale_for=60, clock=clock)
    fresh = answers.get("q", lambda wait: {"total": 1})
    assert fresh == {"total": 1, "stale": False, "as_of": "2026-01-01T00:00:00Z"}
    clock.now += 30
    waits: list[float | None] = []

    def locked(wait: float | None) -> dict[str, Any]:
        waits.append(wait)
        raise busy()

    kept = answers.get("q", locked)
    assert waits == [0.5]  # a kept answer: wait only `patience` for the database
    assert kept["total"] == 1 and kept["stale"] is True
    assert kept["as_of"] == "2026-01-01T00:00:00Z"
    assert kept["busy"] == "process 4242 (context-cleaner migrate)"
    again = answers.get("q", lambda wait: {"total": 2})  # free again: read, not kept
    assert again == {"total": 2, "stale": False, "as_of": "2026-01-01T00:00:30Z"}


def test_no_kept_answer_means_the_error() -> None:
    clock = Clock()
    answers = Answers(stale_for=60, clock=clock)

    def locked(wait: float | None) -> dict[str, Any]:
        raise busy()

    with pytest.raises(DatabaseLockedError):
        answers.get("never asked", locked)
    answers.get("q", lambda wait: {"total": 1})
    clock.now += 61  # too old to serve
    with pytest.raises(DatabaseLockedError):
        answers.get("q", locked)


def test_other_errors_are_never_covered_by_a_kept_answer() -> None:
    answers = Answers()
    answers.get("q", lambda wait: {"total": 1})

    def down(wait: float | None) -> dict[str, Any]:
        raise DatabaseUnavailableError("server down")

    with pytest.raises(DatabaseUnavailableError):
        answers.get("q", down)


def test_only_the_most_recent_questions_are_kept() -> None:
    answers = Answers(max_kept=2)
    for q in ("a", "b", "c"):
        answers.get(q, lambda wait, q=q: {"q": q})

    def locked(wait: float | None) -> dict[str, Any]:
        raise busy()

    assert answers.get("c", locked)["stale"] is True
    assert answers.get("b", locked)["stale"] is True
    with pytest.raises(DatabaseLockedError):
        answers.get("a", locked)
