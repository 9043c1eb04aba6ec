"""The pieces every line writer of a generated session shares: clock, usage, tool results.

Lines are assembled from pre-encoded pieces with bytes ``%`` formatting (see
:mod:`.content`). :class:`SessionParts` holds one session's state;
:mod:`.subagents` adds Task subagents and compaction on top of it and
:mod:`.session` the turns themselves. The order of every random draw is part of
the corpus's bytes: moving code between these classes must keep it.
"""

from __future__ import annotations

import math

from context_cleaner.testing.transcripts import templates as T
from context_cleaner.testing.transcripts.content import b62, iso_ms, uuid4
from context_cleaner.testing.transcripts.files import CorpusFile, SessionSpec, SharedState, Tokens

#: rough list prices (USD per million tokens) for the costUSD field of legacy lines
_LEGACY_PRICE = (15.0, 75.0, 18.75, 1.5)


class SessionParts:
    """One session's state and the helpers that write its lines."""

    def __init__(self, state: SharedState, spec: SessionSpec) -> None:
        self.st = state
        self.rng = state.rng
        self.pools = state.pools
        self.spec = spec
        self.model = spec.model
        sid = spec.session_id
        self.sid = sid
        cwd = b"/home/USER/projects/" + spec.project.encode()
        common = (
            b'"userType":"external","cwd":"%s","sessionId":"%s","version":"%s","gitBranch":"%s"'
        )
        common = common % (cwd, sid, spec.version, spec.branch)
        slug = b',"slug":"%s"' % spec.slug if spec.slug else b""
        self.header = b'"isSidechain":false,' + common + slug
        self.side_common = common
        self.side_slug = slug
        state.projects.add(spec.project)
        self.main = CorpusFile(state, f"{spec.project_dir}/{sid.decode()}.jsonl", sid.decode())
        self.t = spec.start_ms
        self.parent = b""
        self.ctx = 0
        self.pending_cc = self.rng.randint(6_000, 25_000)
        self.main_ids: list[bytes] = []
        self.boundaries: list[tuple[int, bytes, int]] = []
        self.compact_at = 1 if spec.force_features else self.rng.randint(90_000, 170_000)
        # forced in the first session, so that even a 2 MB corpus has every feature:
        # a Task with its subagent file, then one whose subagent file is missing
        self.forced_tasks = [True, False] if spec.force_features else []
        self.force_replay = spec.force_features
        if not state.signatures:
            state.signatures = [b62(self.rng, 120) for _ in range(32)]

    # --- small helpers ------------------------------------------------------------------------

    def _tick(self, lo: int = 40, hi: int = 2_500) -> bytes:
        self.t += self.rng.randint(lo, hi)
        return iso_ms(self.t)

    def _usage(self, out: int, inp: int, cc: int, cr: int, legacy: bool) -> tuple[bytes, Tokens]:
        mode = self.spec.cache_mode
        if legacy:
            return T.USAGE_LEGACY % (inp, cc, cr, out), (inp, out, cc, 0, cr)
        if mode == "1h":
            c5, c1 = 0, cc
        elif mode == "5m":
            c5, c1 = cc, 0
        else:
            c5 = self.rng.randint(0, cc)
            c1 = cc - c5
        return T.USAGE % (inp, cc, cr, c5, c1, out), (inp, out, c5, c1, cr)

    def _plan_usage(self) -> tuple[int, int, int, int, int]:
        """(input, cache_creation, cache_read, partial output, final output) of a response."""
        rng = self.rng
        inp = rng.choice((1, 2, 3, 3, 3, 4, 6, 8, 10))
        if rng.random() < 0.03:
            inp = rng.randint(500, 30_000)
        cc = self.pending_cc
        cr = self.ctx
        partial = rng.randint(1, 30)
        final = max(1, min(16_000, int(180 * math.exp(rng.gauss(0.0, 1.0)))))
        if final <= partial:
            final = partial + rng.randint(1, 60)
        self.ctx = cr + cc
        self.pending_cc = rng.randint(40, 2_500) + final
        return inp, cc, cr, partial, final

    def _tool_block(self, name: bytes, tid: bytes, inp: bytes) -> bytes:
        return T.TOOL_USE % (tid, name, inp, b"" if self.spec.legacy else T.CALLER)

    def _cost(self, u: Tokens) -> bytes:
        p_in, p_out, p_cw, p_cr = _LEGACY_PRICE
        cost = (u[0] * p_in + u[1] * p_out + (u[2] + u[3]) * p_cw + u[4] * p_cr) / 1e6
        self.st.written["cost_usd_lines"] += 1
        return b',"costUSD":%s' % repr(round(cost, 8)).encode()

    def _hook(self, f: CorpusFile, h: bytes, event: bytes, tid: bytes, parent: bytes) -> None:
        rng = self.rng
        f.emit(
            T.HOOK
            % (
                b'"%s"' % parent,
                h,
                event,
                event,
                b"Bash",
                rng.choice(self.pools.hook_commands),
                tid,
                tid,
                self._tick(1, 300),
                uuid4(rng),
            ),
            "progress",
        )

    def _tool_result(
        self, f: CorpusFile, h: bytes, tid: bytes, tool_uuid: bytes, sidechain: bool
    ) -> bytes:
        """Hooks, bash progress and the tool result for one tool_use line; returns the result."""
        rng = self.rng
        pools = self.pools
        if rng.random() < 0.5:
            self._hook(f, h, b"PreToolUse", tid, tool_uuid)
        if rng.random() < 0.3:
            for n in range(rng.randint(1, 3)):
                out = rng.choice(pools.bash_progress_pool)
                f.emit(
                    T.BASH_PROGRESS
                    % (
                        uuid4(rng),
                        h,
                        out,
                        out,
                        n + 2,
                        rng.randint(1, 200),
                        n,
                        tid,
                        uuid4(rng),
                        self._tick(500, 3_000),
                    ),
                    "progress",
                )
        content = rng.choice(pools.tool_result_pool)
        if rng.random() < 0.5:
            extra = T.RESULT_BASH % content
        else:
            n_lines = rng.randint(5, 800)
            extra = T.RESULT_FILE % (content, n_lines, n_lines)
        uid = uuid4(rng)
        is_error = b"true" if rng.random() < 0.04 else b"false"
        f.emit(
            T.TOOL_RESULT
            % (
                tool_uuid,
                h,
                tid,
                content,
                is_error,
                uid,
                self._tick(100, 30_000),
                extra,
                tool_uuid,
            ),
            "user",
        )
        for _ in range(rng.randint(1, 3)):
            self._hook(f, h, b"PostToolUse", tid, tool_uuid)
        if not sidechain:
            self.parent = uid
            self.pending_cc += len(content) // 4
        return content
