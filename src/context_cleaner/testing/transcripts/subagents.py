"""Task subagents (a subagent file plus ``agent_progress`` lines) and auto-compaction."""

from __future__ import annotations

import math

from context_cleaner.testing.transcripts import templates as T
from context_cleaner.testing.transcripts.content import b62, hex_id, iso_ms, uuid4
from context_cleaner.testing.transcripts.files import CorpusFile
from context_cleaner.testing.transcripts.parts import SessionParts


class SubagentParts(SessionParts):
    """Writes the subagents of a session's Task calls and its compactions."""

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
        side = CorpusFile(
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

        def agent_progress(template: bytes, fields: tuple[bytes, ...], ts: bytes) -> None:
            """An ``agent_progress`` line in the main file: ``fields``, then the agent's own."""
            tail = (prompt, agent_id, agent_msg, task_tid, uuid4(rng), ts)
            main.emit(template % (*fields, *tail), "progress")

        agent_progress(T.AGENT_USER, (task_uuid, h, T.TEXT % prompt, p_uuid, ts), ts)
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
                    agent_progress(T.AGENT_ASSISTANT, (self.parent, h, ts, msg, rid, uid), ts)
                    main.usage(mid, rid, False, u, ts, model, True)
                    if not write_file:
                        st.written["progress_usage_without_subagent_file"] += 1
                if i >= len(blocks) - n_tools:
                    tid = tids[i - (len(blocks) - n_tools)]
                    content = self._tool_result(side, sh, tid, uid, sidechain=True)
                    res_uuid = uuid4(rng)
                    if rng.random() < 0.7:
                        rts = iso_ms(self.t)
                        result = T.AGENT_RESULT % (tid, content)
                        agent_progress(T.AGENT_USER, (self.parent, h, result, res_uuid, rts), rts)
                    pending += len(content) // 4
        if write_file and (self.force_replay or rng.random() < 0.05):
            self._replay(side, sh, side_parent, ctx)
        if write_file:
            side.close()
        # else: the subagent transcript is missing; only the progress embeds remain
        self._tool_result(main, h, task_tid, task_uuid, sidechain=False)

    def _replay(self, side: CorpusFile, sh: bytes, side_parent: bytes, ctx: int) -> None:
        """A main-thread message replayed in a subagent under a new request id (DESIGN §3
        rule 4 drops it)."""
        rng = self.rng
        self.force_replay = False
        mid = rng.choice(self.main_ids)
        rid = b"req_011C" + b62(rng, 20)
        usage_json, u = self._usage(rng.randint(5, 500), 3, rng.randint(100, 5_000), ctx, False)
        msg = T.MSG % (
            self.model.encode(),
            mid,
            T.TEXT % rng.choice(self.pools.text_pool),
            usage_json,
        )
        uid = uuid4(rng)
        ts = self._tick()
        side.emit(T.ASSISTANT % (side_parent, sh, msg, rid, uid, ts, b""), "assistant")
        side.usage(mid, rid, True, u, ts, self.model, False)

    def _compact(self) -> None:
        """Auto-compaction: an ``agent-acompact-*`` file, then a boundary and a summary."""
        rng = self.rng
        pools = self.pools
        main = self.main
        h = self.header
        agent_id = b"acompact-" + hex_id(rng, 6)
        side = CorpusFile(
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
