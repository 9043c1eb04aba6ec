"""Hypothesis strategies drawing corpora of realistic transcript lines (see :mod:`.lines`).

Only the tests import this module: it needs Hypothesis (the ``dev`` extra).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import strategies as st

from context_cleaner.testing.transcripts.lines import (
    BASE_MS,
    DAY_MS,
    MUTATIONS,
    Corpus,
    Line,
    assistant,
    dumps,
    mutate,
    noise_lines,
    progress,
    usage,
    usage_tokens,
)

#: session -> (main file, subagent file or None)
SESSIONS = {
    "11111111-aaaa": (
        "-home-u-alpha/11111111-aaaa.jsonl",
        "-home-u-alpha/11111111-aaaa/subagents/agent-a1.jsonl",
    ),
    "22222222-bbbb": ("-home-u-alpha/22222222-bbbb.jsonl", None),
    "33333333-cccc": (
        "-home-u-beta/33333333-cccc.jsonl",
        "-home-u-beta/33333333-cccc/subagents/agent-b2.jsonl",
    ),
}
MODELS = (
    "claude-opus-4-6",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-1-20250805",
    "<synthetic>",
    "claude-unreleased-9",
)
TEXTS = ("ok", "Let me check the usage.", "größe 使用量 ✓", 'say "usage" twice: usage')

#: Offsets from BASE_MS over three days, often within a minute of a quarter hour (where days
#: begin in every timezone).
timestamps = st.one_of(
    st.integers(0, 3 * DAY_MS),
    st.builds(
        lambda quarter, jitter: max(0, quarter * 900_000 + jitter),
        st.integers(0, 3 * 96),
        st.integers(-60_000, 60_000),
    ),
)
small = st.integers(0, 2_000)
large = st.integers(0, 400_000)  # crosses the 200k tier of Sonnet


@st.composite
def usages(draw: st.DrawFn) -> dict[str, Any]:
    """A final usage object: cache creation split or not, speed sometimes."""
    cache_5m, cache_1h = draw(st.one_of(small, large)), draw(small)
    split = draw(st.booleans())
    if not split:
        cache_5m, cache_1h = cache_5m + cache_1h, 0
    return usage(
        draw(st.one_of(small, large)),
        draw(st.integers(1, 64_000)),
        cache_5m,
        cache_1h,
        draw(st.one_of(small, large)),
        split=split,
        speed=draw(st.sampled_from([None, None, "standard", "fast"])),
    )


def _partials(draw: st.DrawFn, final_output: int, count: int) -> list[int]:
    """Nondecreasing partial outputs ending at the final one (one line per content block)."""
    early = sorted(
        draw(st.lists(st.integers(0, final_output), min_size=count - 1, max_size=count - 1))
    )
    return [*early, final_output]


def _with_output(u: dict[str, Any], output: int) -> dict[str, Any]:
    return {**u, "output_tokens": output}


def _line(draw: st.DrawFn, obj: dict[str, Any], **meta: Any) -> Line:
    data = dumps(obj, spaced=draw(st.booleans()), ascii_only=draw(st.booleans()))
    return Line(data, **meta)


def _assistant_line(
    draw: st.DrawFn,
    key: tuple[str, str] | None,
    unit: dict[str, Any],
    output: int | None = None,
    **changes: Any,
) -> Line:
    """An ``assistant`` line (the unit's fields with ``changes``, as :func:`assistant` takes
    them; ``output``: a partial output count) and what it counts for; an unkeyed line
    (``key`` None) also keeps its timestamp."""
    fields = {**unit, **changes}
    if output is not None:
        fields["usage_obj"] = _with_output(fields["usage_obj"], output)
    sidechain = fields.get("sidechain", False)
    ts_ms = fields["ts_ms"] if key is None else None
    tokens = usage_tokens(fields["usage_obj"])
    obj = assistant(**fields)
    return _line(draw, obj, key=key, tokens=tokens, sidechain=sidechain, ts_ms=ts_ms)


@st.composite
def corpora(
    draw: st.DrawFn, max_units: int = 10, noise: bool = True, broken: bool = False
) -> Corpus:
    """A corpus of several sessions: responses, subagent copies, replays, unkeyed lines, noise.

    With ``broken``, also lines that must be skipped (see ``MUTATIONS``).
    """
    files: dict[str, list[Line]] = defaultdict(list)
    main_ids: list[tuple[str, str]] = []  # (message id, session) of main responses
    kinds = ["response", "response", "progress", "sidechain", "replay", "unkeyed"]
    if noise:
        kinds.append("noise")
    if broken:
        kinds.append("broken")
    for i in range(draw(st.integers(0, max_units))):
        kind = draw(st.sampled_from(kinds))
        session = draw(st.sampled_from(sorted(SESSIONS)))
        main_file, sub_file = SESSIONS[session]
        sub_file = sub_file or main_file
        ts = BASE_MS + draw(timestamps)
        model = draw(st.sampled_from(MODELS))
        msg_id = f"msg_{i:03d}"
        request = draw(st.sampled_from([f"req_{i:03d}", f"req_{i:03d}", None]))
        key = (msg_id, request or "")
        final = draw(usages())
        cost = draw(st.sampled_from([None, None, None, 0.25]))
        unit = {
            "msg_id": msg_id,
            "request_id": request,
            "usage_obj": final,
            "ts_ms": ts,
            "model": model,
            "session": session,
        }
        if kind == "response":
            outputs = _partials(draw, final["output_tokens"], draw(st.integers(1, 4)))
            for n, out in enumerate(outputs):
                line = _assistant_line(
                    draw,
                    key,
                    unit,
                    out,
                    ts_ms=ts + 100 * n,
                    text=draw(st.sampled_from(TEXTS)),
                    cost_usd=cost,
                    ts_style=draw(st.sampled_from(["Z", "Z", "+00:00", "+09:00"])),
                )
                files[main_file].append(line)
            main_ids.append((msg_id, session))
        elif kind == "progress":
            # The main file embeds the subagent's message; the subagent file has it as sidechain.
            seen = draw(st.integers(0, final["output_tokens"]))
            u = _with_output(final, seen)
            obj = progress(
                **{**unit, "usage_obj": u},
                outer_request=draw(st.booleans()),
                outer_delay_ms=draw(st.sampled_from([0, 0, 7])),
            )
            files[main_file].append(_line(draw, obj, key=key, tokens=usage_tokens(u)))
            outputs = _partials(draw, final["output_tokens"], draw(st.integers(1, 3)))
            for n, out in enumerate(outputs):
                line = _assistant_line(
                    draw, key, unit, out, ts_ms=ts + 50 + 100 * n, sidechain=True
                )
                files[sub_file].append(line)
        elif kind == "sidechain" or (kind == "replay" and not main_ids):
            line = _assistant_line(draw, key, unit, sidechain=True, cost_usd=cost)
            files[sub_file].append(line)
        elif kind == "replay":
            # A main message replayed in a subagent under a new request id: rule 4 drops it.
            replayed, replay_session = draw(st.sampled_from(main_ids))
            where = SESSIONS[replay_session][1] or SESSIONS[replay_session][0]
            replay_key = (replayed, f"req_{i:03d}_replay")
            line = _assistant_line(
                draw,
                replay_key,
                unit,
                msg_id=replayed,
                request_id=replay_key[1],
                session=replay_session,
                sidechain=True,
            )
            files[where].append(line)
        elif kind == "unkeyed":
            line = _assistant_line(draw, None, unit, msg_id=None, cost_usd=cost)
            files[main_file].append(line)
        elif kind == "broken":
            mutation = draw(st.sampled_from([*MUTATIONS, "invalid_utf8"]))
            obj = assistant(msg_id=msg_id, request_id=request, usage_obj=final, ts_ms=ts)
            if mutation == "invalid_utf8":
                data = dumps(obj).replace(b"Let me", b"Let \xff\xfe me")
            else:
                data = mutate(obj, mutation)
            files[main_file].append(Line(data))
        else:
            for obj in draw(st.lists(st.sampled_from(noise_lines(ts, session)), max_size=3)):
                files[main_file].append(_line(draw, obj))
    # Claude Code appends in time order, but nothing may depend on it: mix lines up sometimes.
    out = Corpus()
    for rel in sorted(files):
        lines = files[rel]
        out.files[rel] = draw(st.permutations(lines)) if draw(st.booleans()) else lines
    return out
