"""Pre-built, already JSON-encoded content for the synthetic transcript corpus.

Generating a gigabyte of transcripts line by line with ``json.dumps`` is far too
slow, so everything large (message text, thinking, tool inputs and results,
prompts, summaries) is built once per seed into pools of UTF-8 JSON string
literals, and lines are assembled from those pieces with bytes formatting.
Content is deliberately varied: prose, code, logs with box-drawing characters,
ANSI escapes (``\\u001b``), accents and emoji, so that parsers see what Claude
Code really writes (raw UTF-8, control characters escaped).
"""

from __future__ import annotations

import json
import math
import random
import time

_B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdef"

_WORD_TEXT = (
    "the a an of to in for on with by from as is are was be this that it we you they "
    "function return value error result file path config token usage session message "
    "request response cache input output model project database table query index "
    "schema migration batch worker process thread queue event handler callback test "
    "assert expected actual parse decode encode stream buffer offset line record row "
    "column type struct class method module package import export build deploy server "
    "client connection timeout retry backoff lock commit rollback checkpoint snapshot "
    "update insert select delete merge replace partition order group sum count total "
    "should could would will need want check verify make sure first then next finally "
    "because however therefore also only still already now here there when while if "
    "implement refactor fix add remove rename move split extract inline document note "
    "component render props state hook effect router template view controller service "
    "annotation transcript terminal dashboard chart filter chip badge panel layout"
)
_WORDS = tuple(_WORD_TEXT.split())

_CODE_LINES = (
    "def {w}_{x}(self, {y}: int) -> dict[str, int]:",
    "    return {{k: v for k, v in self.{w}.items() if v > {n}}}",
    "    if not {w}:\n        raise ValueError(f'missing {w}: {{{y}!r}}')",
    "const {w}{X} = await fetch(`/api/{w}/${{{y}}}`);",
    "  {w}: {{ type: 'string', required: true, default: '{x}' }},",
    "SELECT {w}, sum({x}) FROM {y}_table WHERE day >= '2026-01-{n2}' GROUP BY {w};",
    'defmodule {X}.{W} do\n  use Ecto.Schema\n  schema "{w}s" do\n    field :{x}, :string\n  end',
    '    assert {w}.{x} == {n}, "{w} mismatch"',
    "import {{ {W}{X} }} from './{w}/{x}';",
    "fn {w}_{x}(&mut self, {y}: usize) -> Result<(), Error> {{",
)

_LOG_LINES = (
    "\u2713 {w} {x} passed ({n}ms)",
    "\u2717 {w} {x} failed: expected {n} got {n2}",
    "\u001b[32mINFO\u001b[0m {w}: {x} completed in {n}ms",
    "\u001b[33mWARN\u001b[0m deprecated {w} in lib/{x}/{y}.ex:{n}",
    "    \u2502\n {n2} \u2502       {w} [\n    \u2502       ~~~~~~~~",
    "    \u2514\u2500 lib/{w}/{x}.ex:{n}: (file)",
    "npm warn {w}@{n}.{n2}.0: {x} is no longer supported",
    "Compiling {n} files (.ex)",
    "error[E0{n}]: mismatched types in `{w}_{x}` \u2014 caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "\U0001f4cb Ready work ({n} issues with no blockers): {w} \u25cf P2",
)

_PATH_PARTS = ("lib", "src", "app", "test", "core", "api", "web", "utils", "models", "views")
_EXTS = (".py", ".ts", ".ex", ".rs", ".tsx", ".md", ".sql", ".json")

#: tool name -> relative weight of its use
TOOL_WEIGHTS: dict[str, int] = {
    "Bash": 30,
    "Read": 25,
    "Edit": 15,
    "Grep": 10,
    "Glob": 5,
    "Write": 5,
    "TodoWrite": 5,
    "WebFetch": 3,
}


def b62(rng: random.Random, n: int) -> bytes:
    """``n`` random base-62 characters (the alphabet of Anthropic message ids)."""
    return bytes(rng.choices(_B62, k=n))


def hex_id(rng: random.Random, n: int) -> bytes:
    """``n`` random lower-case hex digits."""
    return bytes(rng.choices(_HEX, k=n))


def uuid4(rng: random.Random) -> bytes:
    """A random (version 4 shaped) UUID drawn from ``rng``, as ASCII bytes."""
    h = b"%032x" % rng.getrandbits(128)
    return b"%s-%s-4%s-%s%s-%s" % (
        h[:8],
        h[8:12],
        h[13:16],
        b"89ab"[h[16] & 3 : (h[16] & 3) + 1],
        h[17:20],
        h[20:],
    )


def iso_ms(ms: int) -> bytes:
    """Milliseconds since the epoch as Claude Code writes it: ``2026-02-11T21:24:22.960Z``."""
    sec, frac = divmod(ms, 1000)
    return b"%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode(), frac)


def _lognormal_len(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(median * math.exp(rng.gauss(0.0, sigma)))))


def _fill(rng: random.Random, template: str) -> str:
    w, x, y = rng.choice(_WORDS), rng.choice(_WORDS), rng.choice(_WORDS)
    return template.format(
        w=w,
        x=x,
        y=y,
        W=w.capitalize(),
        X=x.capitalize(),
        n=rng.randint(1, 999),
        n2=rng.randint(10, 28),
    )


def _base_text(rng: random.Random, size: int) -> str:
    """About ``size`` characters of mixed prose, code and log output."""
    parts: list[str] = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.45:
            sentence = " ".join(rng.choices(_WORDS, k=rng.randint(6, 22)))
            piece = sentence[0].upper() + sentence[1:] + rng.choice((". ", ".\n", ".\n\n", "? "))
        elif kind < 0.75:
            piece = "\n".join(_fill(rng, rng.choice(_CODE_LINES)) for _ in range(rng.randint(2, 8)))
            piece = "```\n" + piece + "\n```\n"
        else:
            piece = "\n".join(_fill(rng, rng.choice(_LOG_LINES)) for _ in range(rng.randint(2, 10)))
            piece += "\n"
        parts.append(piece)
        total += len(piece)
    return "".join(parts)


def _enc(value: object) -> bytes:
    """Compact JSON as Claude Code writes it (raw UTF-8, control characters escaped)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class ContentPools:
    """Pools of JSON-encoded strings and objects, built once per seed.

    Every attribute ending in ``_pool`` is a list of ``bytes`` that can be pasted
    directly into a JSON line; ``*_text`` pools are JSON string literals (quotes
    included), ``tool_inputs`` maps a tool name to JSON objects.
    """

    def __init__(self, rng: random.Random) -> None:
        base = _base_text(rng, 400_000)
        self._base = base
        self._rng = rng
        self.text_pool = self._strings(400, 350, 0.9, 2, 12_000)
        self.thinking_pool = self._strings(300, 900, 0.8, 40, 16_000)
        self.tool_result_pool = self._strings(1200, 1800, 1.1, 20, 60_000)
        self.prompt_pool = self._strings(200, 220, 0.9, 5, 6_000)
        self.bash_progress_pool = self._strings(120, 400, 0.7, 20, 3_000)
        self.summary_pool = self._strings(24, 9_000, 0.4, 3_000, 30_000)
        self.agent_prompt_pool = self._strings(60, 450, 0.5, 60, 3_000)
        self.tool_inputs: dict[str, list[bytes]] = {
            name: [self._tool_input(name) for _ in range(120)] for name in TOOL_WEIGHTS
        }
        self.tool_names = list(TOOL_WEIGHTS)
        self.tool_weights = list(TOOL_WEIGHTS.values())
        self.hook_commands = [
            _enc(c)
            for c in (
                "/home/USER/.claude/hooks/tmux-waiting.sh clear",
                "${CLAUDE_PLUGIN_ROOT}/scripts/tool-call-capture.sh",
                "cd ${CLAUDE_PLUGIN_ROOT}/hooks && bun run ./dist/on-tool.js",
                "uv run --quiet ~/.claude/hooks/lint_on_edit.py",
            )
        ]

    def _slice(self, n: int) -> str:
        start = self._rng.randrange(0, len(self._base) - 1)
        piece = self._base[start : start + n]
        while len(piece) < n:
            piece += self._base[: n - len(piece)]
        return piece

    def _strings(self, count: int, median: float, sigma: float, lo: int, hi: int) -> list[bytes]:
        return [
            _enc(self._slice(_lognormal_len(self._rng, median, sigma, lo, hi)))
            for _ in range(count)
        ]

    def _path(self) -> str:
        rng = self._rng
        parts = [*rng.choices(_PATH_PARTS, k=rng.randint(1, 3)), rng.choice(_WORDS)]
        return "/home/USER/projects/app/" + "/".join(parts) + rng.choice(_EXTS)

    def _tool_input(self, name: str) -> bytes:
        rng = self._rng
        if name == "Bash":
            cmd = " ".join(rng.choices(_WORDS, k=rng.randint(2, 10)))
            obj: dict[str, object] = {
                "command": rng.choice(("mix test ", "npm run ", "pytest -q ", "git ", "bd ")) + cmd,
                "description": " ".join(rng.choices(_WORDS, k=rng.randint(2, 6))).capitalize(),
            }
            if rng.random() < 0.2:
                obj["timeout"] = rng.choice((60000, 120000, 300000))
        elif name == "Read":
            obj = {"file_path": self._path()}
            if rng.random() < 0.3:
                obj["offset"] = rng.randint(1, 400)
                obj["limit"] = rng.choice((50, 100, 200))
        elif name == "Edit":
            obj = {
                "file_path": self._path(),
                "old_string": self._slice(_lognormal_len(rng, 300, 0.8, 10, 6_000)),
                "new_string": self._slice(_lognormal_len(rng, 400, 0.8, 10, 8_000)),
                "replace_all": False,
            }
        elif name == "Write":
            obj = {
                "file_path": self._path(),
                "content": self._slice(_lognormal_len(rng, 2_500, 0.9, 100, 40_000)),
            }
        elif name == "Grep":
            obj = {"pattern": rng.choice(_WORDS) + ".*" + rng.choice(_WORDS), "path": "lib"}
            if rng.random() < 0.5:
                obj["output_mode"] = "content"
        elif name == "Glob":
            obj = {"pattern": "**/*" + rng.choice(_EXTS)}
        elif name == "TodoWrite":
            obj = {
                "todos": [
                    {
                        "content": " ".join(rng.choices(_WORDS, k=rng.randint(3, 9))),
                        "status": rng.choice(("pending", "in_progress", "completed")),
                        "activeForm": " ".join(rng.choices(_WORDS, k=rng.randint(3, 9))),
                    }
                    for _ in range(rng.randint(2, 8))
                ]
            }
        else:  # WebFetch
            obj = {
                "url": "https://example.com/docs/" + rng.choice(_WORDS) + ".md",
                "prompt": " ".join(rng.choices(_WORDS, k=rng.randint(8, 30))),
            }
        return _enc(obj)
