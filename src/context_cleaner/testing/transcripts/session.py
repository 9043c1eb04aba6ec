"""Write one synthetic Claude Code session: its main file and its subagent files.

The turns (prompts, responses, tool calls) live here; the helpers they share in
:mod:`.parts`, Task subagents and compaction in :mod:`.subagents`.
"""

from __future__ import annotations

from context_cleaner.testing.transcripts import templates as T
from context_cleaner.testing.transcripts.content import b62, hex_id, uuid4
from context_cleaner.testing.transcripts.files import FinishedSession
from context_cleaner.testing.transcripts.subagents import SubagentParts


class SessionWriter(SubagentParts):
    """Generates one session (turns of prompts, responses, tools, subagents, compactions)."""

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
            if st.written["bytes"] + self.main.offset >= stop_at_bytes:
                break
            if self.main.offset >= spec.byte_budget:
                break
        self.boundaries.append((len(self.main.lines), self.parent, self.ctx))
        self.main.close()
        st.written["session_files"] += 1
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
        if self.spec.responses:  # a fixed number of plain answers (no tools): many-files shape
            for _ in range(self.spec.responses):
                self._response(final=True)
        else:
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
