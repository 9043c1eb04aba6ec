"""Write one synthetic Claude Code session: its main file and its subagent files.

Lines are assembled from pre-encoded pieces with bytes ``%`` formatting (see
``corpus_content.py``); every usage record written is reported to
:class:`~benchmarks.corpus_manifest.ExpectedUsage` with its file, byte offset
and timestamp so the manifest's totals are exact.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import corpus_templates as T
from benchmarks.corpus_content import ContentPools, b62, hex_id, iso_ms, uuid4
from benchmarks.corpus_manifest import ExpectedUsage, UsageLine

Tokens = tuple[int, int, int, int, int]
"""(input, output, cache_creation_5m, cache_creation_1h, cache_read) of one usage record."""

#: rough list prices (USD per million tokens) for the costUSD field of legacy lines
_LEGACY_PRICE = (15.0, 75.0, 18.75, 1.5)


@dataclass
class SharedState:
    """What all sessions of one corpus share: randomness, content, counters, the manifest."""

    rng: random.Random
    pools: ContentPools
    projects_dir: Path
    expected: ExpectedUsage
    bytes_written: int = 0
    files: int = 0
    session_files: int = 0
    lines: int = 0
    cost_usd_lines: int = 0
    orphan_progress_usage: int = 0
    """Progress-embedded usage records whose subagent file was not written."""
    line_types: Counter[str] = field(default_factory=Counter)
    projects: set[str] = field(default_factory=set)
    last_session: dict[str, FinishedSession] = field(default_factory=dict)
    signatures: list[bytes] = field(default_factory=list)


@dataclass
class SessionSpec:
    project: str
    session_id: bytes
    version: bytes
    branch: bytes
    slug: bytes
    model: str
    legacy: bool
    cache_mode: str
    start_ms: int
    turns: int
    byte_budget: int
    force_features: bool

    @property
    def project_dir(self) -> str:
        return "-home-USER-projects-" + self.project


@dataclass
class FinishedSession:
    """A written session kept in memory so a later session can resume it."""

    session_id: str
    lines: list[bytes]
    records: list[tuple[int, UsageLine]]
    boundaries: list[tuple[int, bytes, int]]
    """(line count, uuid of the last line, context tokens) at each turn start."""
    end_ms: int


class _File:
    """One output file being built in memory, written in one call when closed."""

    def __init__(self, state: SharedState, rel_path: str, session: str) -> None:
        self.state = state
        self.rel_path = rel_path
        self.session = session
        self.lines: list[bytes] = []
        self.offset = 0
        self.records: list[tuple[int, UsageLine]] = []
        self.kinds: Counter[str] = Counter()

    def emit(self, line: bytes, kind: str) -> None:
        self.lines.append(line + b"\n")
        self.offset += len(line) + 1
        self.kinds[kind] += 1

    def usage(
        self,
        mid: bytes,
        rid: bytes,
        sidechain: bool,
        u: Tokens,
        ts: bytes,
        model: str,
        from_progress: bool,
    ) -> None:
        """Record the usage of the line emitted last."""
        last = self.lines[-1]
        rec = UsageLine(
            mid.decode(),
            rid.decode(),
            sidechain,
            u[0],
            u[1],
            u[2],
            u[3],
            u[4],
            ts.decode(),
            self.rel_path,
            self.offset - len(last),
            self.session,
            model,
            from_progress,
        )
        self.records.append((len(self.lines) - 1, rec))

    def close(self) -> None:
        """Write the file and count its lines and usage records (unwritten files count nothing)."""
        path = self.state.projects_dir / self.rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"".join(self.lines))
        st = self.state
        st.files += 1
        st.lines += len(self.lines)
        st.bytes_written += self.offset
        st.line_types.update(self.kinds)
        for _, rec in self.records:
            st.expected.add(rec)


class SessionWriter:
    """Generates one session (turns of prompts, responses, tools, subagents, compactions)."""

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
        self.main = _File(state, f"{spec.project_dir}/{sid.decode()}.jsonl", sid.decode())
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
        self.st.cost_usd_lines += 1
        return b',"costUSD":%s' % repr(round(cost, 8)).encode()

    # --- session structure --------------------------------------------------------------------

    def resume_from(self, prev: FinishedSession) -> int:
        """Start this session with a byte-identical copy of ``prev``'s first turns."""
        rng = self.rng
        candidates = [b for b in prev.boundaries if b[0] > 0] or prev.boundaries
        n_lines, last_uuid, ctx = rng.choice(candidates[len(candidates) // 3 :])
        f = self.main
        for i in range(n_lines):
            line = prev.lines[i]
            f.lines.append(line)
            f.offset += len(line)
        for idx, rec in prev.records:
            if idx < n_lines:
                moved = rec._replace(path=f.rel_path, session=f.session)
                f.records.append((idx, moved))
        f.kinds["resumed-copy"] += n_lines
        self.parent = last_uuid
        self.ctx = ctx
        self.t = max(self.t, prev.end_ms + rng.randint(60_000, 2 * 86_400_000))
        return n_lines

    def run(self, stop_at_bytes: int) -> None:
        spec = self.spec
        st = self.st
        for turn in range(spec.turns):
            self.boundaries.append((len(self.main.lines), self.parent, self.ctx))
            if turn and self.ctx > self.compact_at and not spec.legacy:
                self._compact()
            if turn and self.rng.random() < 0.03 and not spec.legacy:
                self.model = self.rng.choice(
                    ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
                )
            self._turn()
            if st.bytes_written + self.main.offset >= stop_at_bytes:
                break
            if self.main.offset >= spec.byte_budget:
                break
        self.boundaries.append((len(self.main.lines), self.parent, self.ctx))
        self.main.close()
        st.session_files += 1
        st.last_session[spec.project] = FinishedSession(
            session_id=self.sid.decode(),
            lines=self.main.lines,
            records=self.main.records,
            boundaries=self.boundaries,
            end_ms=self.t,
        )

    def _turn(self) -> None:
        rng = self.rng
        f = self.main
        h = self.header
        prompt_uuid = uuid4(rng)
        ts = self._tick(20_000, 1_800_000)
        if rng.random() < 0.7:
            backups = b",".join(
                T.BACKUP % (hex_id(rng, 6), hex_id(rng, 16), v, v, ts)
                for v in range(1, rng.randint(1, 4))
            )
            f.emit(
                T.SNAPSHOT % (prompt_uuid, prompt_uuid, backups, ts, b"false"),
                "file-history-snapshot",
            )
        if rng.random() < 0.05:
            f.emit(T.QUEUE % (ts, self.sid, rng.choice(self.pools.prompt_pool)), "queue-operation")
        parent = b'"%s"' % self.parent if self.parent else b"null"
        f.emit(
            T.USER
            % (parent, h, rng.choice(self.pools.prompt_pool), prompt_uuid, ts, T.PROMPT_EXTRA),
            "user",
        )
        self.parent = prompt_uuid
        for k in range(25):
            more = self._response(final=k > 0 and rng.random() < 0.18)
            if not more:
                break
        if rng.random() < 0.5:
            u1, u2 = uuid4(rng), uuid4(rng)
            hook_cmd = rng.choice(self.pools.hook_commands)
            f.emit(
                T.STOP_HOOK % (self.parent, h, hook_cmd, self._tick(), u1, uuid4(rng)),
                "system",
            )
            f.emit(
                T.TURN_DURATION % (u1, h, rng.randint(5_000, 3_000_000), self._tick(1, 60), u2),
                "system",
            )
            self.parent = u2

    def _response(self, final: bool) -> bool:
        """One assistant response in the main file; True when it used tools."""
        rng = self.rng
        pools = self.pools
        legacy = self.spec.legacy
        blocks: list[tuple[str, bytes]] = []
        if rng.random() < 0.25:
            thinking = rng.choice(pools.thinking_pool)
            blocks.append(("thinking", T.THINKING % (thinking, rng.choice(self.st.signatures))))
        if final or rng.random() < 0.55:
            blocks.append(("text", T.TEXT % rng.choice(pools.text_pool)))
        if not final:
            r = rng.random()
            n_tools = 1 if r < 0.7 else 2 if r < 0.9 else rng.randint(3, 6)
            blocks.extend(("tool", b"") for _ in range(n_tools))
        mid = b"msg_01" + b62(rng, 22)
        rid = b"req_011C" + b62(rng, 20)
        self.main_ids.append(mid)
        inp, cc, cr, partial, final_out = self._plan_usage()
        f = self.main
        h = self.header
        for i, (kind, block) in enumerate(blocks):
            last = i == len(blocks) - 1
            usage_json, u = self._usage(final_out if last else partial, inp, cc, cr, legacy)
            task = False
            tid = b""
            if kind == "tool":
                tid = b"toolu_01" + b62(rng, 22)
                task = not legacy and (bool(self.forced_tasks) or rng.random() < 0.04)
                if task:
                    tool_input = (
                        b'{"description":"Research","subagent_type":"general-purpose","prompt":%s}'
                    )
                    block = self._tool_block(
                        b"Task", tid, tool_input % rng.choice(pools.agent_prompt_pool)
                    )
                else:
                    name = rng.choices(pools.tool_names, pools.tool_weights)[0]
                    block = self._tool_block(
                        name.encode(), tid, rng.choice(pools.tool_inputs[name])
                    )
            uid = uuid4(rng)
            ts = self._tick()
            msg = T.MSG % (self.model.encode(), mid, block, usage_json)
            f.emit(
                T.ASSISTANT % (self.parent, h, msg, rid, uid, ts, self._cost(u) if legacy else b""),
                "assistant",
            )
            f.usage(mid, rid, False, u, ts, self.model, False)
            self.parent = uid
            if kind == "tool":
                if task:
                    self._task(tid, uid)
                else:
                    self._tool_result(f, h, tid, uid, sidechain=False)
        return not final

    def _hook(self, f: _File, h: bytes, event: bytes, tid: bytes, parent: bytes) -> None:
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
        self, f: _File, h: bytes, tid: bytes, tool_uuid: bytes, sidechain: bool
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

    # --- subagents and compaction -------------------------------------------------------------

    def _side_header(self, agent_id: bytes) -> bytes:
        return b'"isSidechain":true,%s,"agentId":"%s"%s' % (
            self.side_common,
            agent_id,
            self.side_slug,
        )

    def _task(self, task_tid: bytes, task_uuid: bytes) -> None:
        """A Task tool call: a subagent file plus agent_progress lines in the main file."""
        rng = self.rng
        pools = self.pools
        st = self.st
        main = self.main
        h = self.header
        agent_id = b"a" + hex_id(rng, 6)
        write_file = self.forced_tasks.pop(0) if self.forced_tasks else rng.random() < 0.9
        side = _File(
            st,
            f"{self.spec.project_dir}/{self.sid.decode()}/subagents/agent-{agent_id.decode()}.jsonl",
            self.sid.decode(),
        )
        sh = self._side_header(agent_id)
        model = rng.choices(
            ("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929", self.model), (50, 35, 15)
        )[0]
        prompt = rng.choice(pools.agent_prompt_pool)
        agent_msg = self.main_ids[-1]
        ts = self._tick()
        p_uuid = uuid4(rng)
        side.emit(T.USER % (b"null", sh, prompt, p_uuid, ts, b""), "user")
        main.emit(
            T.AGENT_USER
            % (
                task_uuid,
                h,
                T.TEXT % prompt,
                p_uuid,
                ts,
                prompt,
                agent_id,
                agent_msg,
                task_tid,
                uuid4(rng),
                ts,
            ),
            "progress",
        )
        side_parent = p_uuid
        ctx, pending = 0, rng.randint(8_000, 20_000)
        n_resp = rng.randint(2, 10)
        for r in range(n_resp):
            last_resp = r == n_resp - 1
            mid = b"msg_01" + b62(rng, 22)
            rid = b"req_011C" + b62(rng, 20)
            n_tools = 0 if last_resp else rng.randint(1, 2)
            blocks = (
                [T.TEXT % rng.choice(pools.text_pool)] if last_resp or rng.random() < 0.5 else []
            )
            tids = [b"toolu_01" + b62(rng, 22) for _ in range(n_tools)]
            for tid in tids:
                name = rng.choices(pools.tool_names, pools.tool_weights)[0]
                blocks.append(
                    self._tool_block(name.encode(), tid, rng.choice(pools.tool_inputs[name]))
                )
            partial = rng.randint(1, 20)
            final = partial + max(1, int(150 * math.exp(rng.gauss(0.0, 0.9))))
            cc, cr = pending, ctx
            ctx, pending = ctx + cc, rng.randint(50, 3_000)
            embed_at = rng.randrange(len(blocks)) if rng.random() < 0.8 else -1
            for i, block in enumerate(blocks):
                usage_json, u = self._usage(
                    final if i == len(blocks) - 1 else partial, 3, cc, cr, False
                )
                msg = T.MSG % (model.encode(), mid, block, usage_json)
                uid = uuid4(rng)
                ts = self._tick()
                side.emit(T.ASSISTANT % (side_parent, sh, msg, rid, uid, ts, b""), "assistant")
                side.usage(mid, rid, True, u, ts, model, False)
                side_parent = uid
                if i == embed_at:
                    main.emit(
                        T.AGENT_ASSISTANT
                        % (
                            self.parent,
                            h,
                            ts,
                            msg,
                            rid,
                            uid,
                            prompt,
                            agent_id,
                            agent_msg,
                            task_tid,
                            uuid4(rng),
                            ts,
                        ),
                        "progress",
                    )
                    main.usage(mid, rid, False, u, ts, model, True)
                    if not write_file:
                        st.orphan_progress_usage += 1
                if i >= len(blocks) - n_tools:
                    tid = tids[i - (len(blocks) - n_tools)]
                    content = self._tool_result(side, sh, tid, uid, sidechain=True)
                    res_uuid = uuid4(rng)
                    if rng.random() < 0.7:
                        rts = iso_ms(self.t)
                        main.emit(
                            T.AGENT_USER
                            % (
                                self.parent,
                                h,
                                b'{"tool_use_id":"%s","type":"tool_result","content":%s}'
                                % (tid, content),
                                res_uuid,
                                rts,
                                prompt,
                                agent_id,
                                agent_msg,
                                task_tid,
                                uuid4(rng),
                                rts,
                            ),
                            "progress",
                        )
                    pending += len(content) // 4
        if write_file and (self.force_replay or rng.random() < 0.05):
            # a replay of a main-thread message under a new request id (DESIGN §3 rule 4)
            self.force_replay = False
            mid = rng.choice(self.main_ids)
            rid = b"req_011C" + b62(rng, 20)
            usage_json, u = self._usage(rng.randint(5, 500), 3, rng.randint(100, 5_000), ctx, False)
            msg = T.MSG % (
                self.model.encode(),
                mid,
                T.TEXT % rng.choice(pools.text_pool),
                usage_json,
            )
            uid = uuid4(rng)
            ts = self._tick()
            side.emit(T.ASSISTANT % (side_parent, sh, msg, rid, uid, ts, b""), "assistant")
            side.usage(mid, rid, True, u, ts, self.model, False)
        if write_file:
            side.close()
        # else: the subagent transcript is missing; only the progress embeds remain
        self._tool_result(main, h, task_tid, task_uuid, sidechain=False)

    def _compact(self) -> None:
        """Auto-compaction: an ``agent-acompact-*`` file, then a boundary and a summary."""
        rng = self.rng
        pools = self.pools
        main = self.main
        h = self.header
        agent_id = b"acompact-" + hex_id(rng, 6)
        side = _File(
            self.st,
            f"{self.spec.project_dir}/{self.sid.decode()}/subagents/agent-{agent_id.decode()}.jsonl",
            self.sid.decode(),
        )
        sh = self._side_header(agent_id)
        parent = b'"%s"' % self.parent
        for _ in range(rng.randint(1, 3)):
            uid = uuid4(rng)
            side.emit(
                T.USER % (parent, sh, rng.choice(pools.summary_pool), uid, self._tick(), b""),
                "user",
            )
            parent = b'"%s"' % uid
        mid = b"msg_01" + b62(rng, 22)
        rid = b"req_011C" + b62(rng, 20)
        partial = rng.randint(1, 20)
        final = rng.randint(1_500, 9_000)
        n_lines = rng.randint(1, 2)
        cc = rng.randint(500, 5_000)
        for i in range(n_lines):
            usage_json, u = self._usage(
                final if i == n_lines - 1 else partial, 3, cc, self.ctx, False
            )
            msg = T.MSG % (
                self.model.encode(),
                mid,
                T.TEXT % rng.choice(pools.summary_pool),
                usage_json,
            )
            uid = uuid4(rng)
            ts = self._tick(5_000, 60_000)
            side.emit(T.ASSISTANT % (parent[1:-1], sh, msg, rid, uid, ts, b""), "assistant")
            side.usage(mid, rid, True, u, ts, self.model, False)
            parent = b'"%s"' % uid
        side.close()
        boundary = uuid4(rng)
        main.emit(T.COMPACT % (self.parent, h, self._tick(), boundary, self.ctx), "system")
        summary = T.SUMMARY_HEAD + rng.choice(pools.summary_pool)[1:]
        uid = uuid4(rng)
        main.emit(
            T.USER % (b'"%s"' % boundary, h, summary, uid, self._tick(1, 50), T.SUMMARY_EXTRA),
            "user",
        )
        self.parent = uid
        self.compact_at = rng.randint(90_000, 170_000)
        self.ctx = rng.randint(15_000, 30_000)
        self.pending_cc = rng.randint(3_000, 12_000)
