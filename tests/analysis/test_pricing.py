"""Offline prices (DESIGN §3 rule 7): the bundled table, names, tiers, overrides, fast mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis import pricing
from context_cleaner.analysis.counter import EnhancedTokenCounter, record_cost
from context_cleaner.analysis.pricing import ModelPrice, PriceTable, normalise_model
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.errors import ConfigurationError
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, usage

M = 1_000_000

# USD per million input / output tokens, as the issue gives them.
BUNDLED = [
    ("claude-opus-4-20250514", 15, 75),
    ("claude-opus-4-1-20250805", 15, 75),
    ("claude-opus-4-5-20251101", 5, 25),
    ("claude-opus-4-6", 5, 25),
    ("claude-opus-4-7", 5, 25),  # "Opus 4.5 and later"
    ("claude-sonnet-4-20250514", 3, 15),
    ("claude-sonnet-4-5-20250929", 3, 15),
    ("claude-sonnet-4-6", 3, 15),
    ("claude-haiku-4-5-20251001", 1, 5),
    ("claude-3-5-haiku-20241022", 0.8, 4),
]


@pytest.mark.parametrize(("model", "input_price", "output_price"), BUNDLED)
def test_bundled_prices(model: str, input_price: float, output_price: float) -> None:
    table = PriceTable()
    n = 100_000  # below every long-context threshold
    per_m = M / n

    def cost(i: int = 0, o: int = 0, c5: int = 0, c1: int = 0, r: int = 0) -> float:
        return table.cost(model, i, o, c5, c1, r) * per_m

    assert cost(i=n) == pytest.approx(input_price)
    assert cost(o=n) == pytest.approx(output_price)
    assert cost(c5=n) == pytest.approx(1.25 * input_price)
    assert cost(c1=n) == pytest.approx(2 * input_price)
    assert cost(r=n) == pytest.approx(0.1 * input_price)
    assert cost(n, n, n, n, n) == pytest.approx(input_price * 4.35 + output_price)
    assert table.is_known(model)


def test_sonnet_charges_the_long_context_tier_per_token_type_beyond_200k() -> None:
    table = PriceTable()
    for model in ("claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929", "claude-sonnet-4-6"):
        assert table.cost(model, 300_000, 0, 0, 0, 0) == pytest.approx(0.6 + 0.6)
        assert table.cost(model, 0, 250_000, 0, 0, 0) == pytest.approx(3.0 + 50_000 * 22.5 / M)
        assert table.cost(model, 0, 0, 300_000, 0, 0) == pytest.approx(0.75 + 0.75)
        assert table.cost(model, 0, 0, 0, 300_000, 0) == pytest.approx(1.2 + 1.2)
        assert table.cost(model, 0, 0, 0, 0, 300_000) == pytest.approx(0.06 + 0.06)
        assert table.cost(model, 200_000, 0, 0, 0, 0) == pytest.approx(0.6)  # at the threshold
        # Per token type: 150k of each stays below the threshold although 450k in all.
        assert table.cost(model, 150_000, 150_000, 0, 0, 150_000) == pytest.approx(
            0.45 + 2.25 + 0.045
        )


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-haiku-4-5", "claude-opus-4-1"])
def test_other_models_have_no_long_context_tier(model: str) -> None:
    table = PriceTable()
    assert table.cost(model, 300_000, 0, 0, 0, 0) == pytest.approx(
        3 * table.cost(model, 100_000, 0, 0, 0, 0)
    )


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("us-gov.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("anthropic.claude-haiku-4-5-20251001-v2:0", "claude-haiku-4-5"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("anthropic/claude-opus-4-6", "claude-opus-4-6"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"),
        (" Claude-Opus-4-6 ", "claude-opus-4-6"),
    ],
)
def test_model_names_are_normalised(raw: str, name: str) -> None:
    assert normalise_model(raw) == name
    table = PriceTable()
    assert table.price(raw) is table.price(name) is not None


def record(model: str, *, cost_usd: float | None = None, speed: str = "") -> UsageRecord:
    return UsageRecord(
        "m", "r", "s", "", "p", "p/s.jsonl", 1, 0, BASE_MS, model, False, speed, False,
        1_000, 2_000, 3_000, 4_000, 5_000, cost_usd,
    )  # fmt: skip


def test_cost_usd_on_the_line_wins_over_the_table() -> None:
    table = PriceTable()
    assert record_cost(record("claude-opus-4-6", cost_usd=0.125), table) == 0.125
    assert record_cost(record("claude-mystery-1", cost_usd=0.5), table) == 0.5
    assert record_cost(record("claude-opus-4-6", cost_usd=0.0), table) == 0.0
    by_table = record_cost(record("claude-opus-4-6"), table)
    assert by_table == pytest.approx(
        (1_000 * 5 + 2_000 * 25 + 3_000 * 6.25 + 4_000 * 10 + 500 * 5) / M
    )


def test_fast_mode_multiplies_opus_4_6_only() -> None:
    table = PriceTable()
    standard = record_cost(record("claude-opus-4-6", speed="standard"), table)
    assert record_cost(record("claude-opus-4-6", speed="fast"), table) == pytest.approx(
        6 * standard
    )
    assert record_cost(record("claude-opus-4-6"), table) == pytest.approx(standard)
    for model in ("claude-sonnet-4-5-20250929", "claude-opus-4-5-20251101"):
        assert record_cost(record(model, speed="fast"), table) == pytest.approx(
            record_cost(record(model), table)
        )
    # A cost written on the line is already what was charged.
    assert record_cost(record("claude-opus-4-6", cost_usd=0.25, speed="fast"), table) == 0.25


# -- through the counter --------------------------------------------------------------


def write_lines(root: Path, *lines: dict[str, Any]) -> Path:
    path = root / "projects" / "p" / "s.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(dumps(line) + b"\n" for line in lines))
    return root


def line(n: int, model: str, u: dict[str, Any], cost: float | None = None) -> dict[str, Any]:
    return assistant(
        msg_id=f"msg_{n}", request_id=f"req_{n}", usage_obj=u, ts_ms=BASE_MS, model=model,
        cost_usd=cost,
    )  # fmt: skip


@pytest.fixture
def priced_corpus(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "cfg",
        line(1, "claude-opus-4-6", usage(M, 0), cost=0.5),  # 5 USD by the table; the line says 0.5
        line(2, "claude-mystery-1", usage(M, M)),  # unknown: 0, reported
        line(3, "<synthetic>", usage(0, 0)),  # Claude Code's placeholder: free, not reported
        line(4, "claude-mystery-2", usage(M, 0), cost=0.25),  # unknown but priced on the line
        line(5, "claude-opus-4-6", usage(0, M, speed="fast")),  # 25 USD x 6
        line(6, "us.anthropic.claude-haiku-4-5-20251001-v1:0", usage(M, 0)),  # 1 USD
    )


def test_unknown_models_cost_zero_and_are_reported(
    priced_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONTEXT_CLEANER_PRICES", raising=False)
    report = EnhancedTokenCounter([priced_corpus], workers=1).analyze()
    assert report.unknown_models == ["claude-mystery-1"]
    assert [w for w in report.warnings if "claude-mystery" in w] == [
        "Unknown model 'claude-mystery-1': priced at $0; add it to a price file (--prices) to "
        "price it."
    ]
    costs = {m.model: m.cost_usd for m in report.models}
    assert costs["claude-mystery-1"] == 0
    assert costs["<synthetic>"] == 0
    assert costs["claude-mystery-2"] == pytest.approx(0.25)
    assert costs["claude-opus-4-6"] == pytest.approx(0.5 + 150)
    assert costs["us.anthropic.claude-haiku-4-5-20251001-v1:0"] == pytest.approx(1)
    assert report.totals.cost_usd == pytest.approx(0.5 + 0.25 + 150 + 1)


def test_a_price_file_adds_and_overrides_models(priced_corpus: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "models": {
                    "claude-mystery-1": {"input": 2, "output": 4},
                    "claude-opus-4-6": {"input": 1, "output": 2, "fast_multiplier": 3},
                    "us.anthropic.claude-haiku-4-5-20251001-v1:0": {"input": 0.5, "output": 1},
                }
            }
        )
    )
    report = EnhancedTokenCounter(
        [priced_corpus], prices=PriceTable.load(prices), workers=1
    ).analyze()
    costs = {m.model: m.cost_usd for m in report.models}
    assert costs["claude-mystery-1"] == pytest.approx(2 + 4)
    assert costs["claude-opus-4-6"] == pytest.approx(0.5 + 2 * 3)  # the line's costUSD still wins
    assert costs["us.anthropic.claude-haiku-4-5-20251001-v1:0"] == pytest.approx(0.5)
    assert report.unknown_models == []
    assert not [w for w in report.warnings if "Unknown model" in w]


def test_price_file_names_are_normalised_and_an_exact_name_wins(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "models": {
                    "claude-sonnet-4-5": {"input": 1, "output": 1},
                    "claude-sonnet-4-5-20250929": {"input": 2, "output": 2},
                    "eu.anthropic.claude-mystery-3-20260101-v1:0": {"input": 7, "output": 7},
                }
            }
        )
    )
    table = PriceTable.load(prices)
    assert table.cost("claude-sonnet-4-5-20250929", M, 0, 0, 0, 0) == pytest.approx(2)
    assert table.cost("claude-sonnet-4-5-20260101", M, 0, 0, 0, 0) == pytest.approx(1)
    assert table.cost("claude-mystery-3", M, 0, 0, 0, 0) == pytest.approx(7)
    # Defaults derived from the overridden input price: 1.25x, 2x, 0.1x.
    assert table.cost("claude-mystery-3", 0, 0, M, M, M) == pytest.approx(7 * 3.35)
    # Models the file does not name keep the bundled price.
    assert table.cost("claude-opus-4-6", M, 0, 0, 0, 0) == pytest.approx(5)


def test_an_edited_price_file_is_read_again(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-mystery-1": {"input": 2, "output": 4}}}))
    assert PriceTable.load(prices).cost("claude-mystery-1", M, 0, 0, 0, 0) == pytest.approx(2)
    prices.write_text(json.dumps({"models": {"claude-mystery-1": {"input": 30, "output": 40}}}))
    os.utime(prices, ns=(1, 1))  # a different modification time, even on a coarse clock
    assert PriceTable.load(prices).cost("claude-mystery-1", M, 0, 0, 0, 0) == pytest.approx(30)


INVALID = {
    "not-json.json": ("{models: nope", "not valid"),
    "no-models.json": (json.dumps({"prices": {}}), "models"),
    "negative.json": (json.dumps({"models": {"x": {"input": -1, "output": 1}}}), "input"),
    "typo.json": (json.dumps({"models": {"x": {"inptu": 1, "output": 1}}}), "inptu"),
    "missing-output.json": (json.dumps({"models": {"x": {"input": 1}}}), "output"),
    "list.json": (json.dumps({"models": [1, 2]}), "models"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_an_invalid_price_file_is_a_clear_configuration_error(tmp_path: Path, name: str) -> None:
    content, mentioned = INVALID[name]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigurationError) as caught:
        PriceTable.load(path)
    message = str(caught.value)
    assert str(path) in message
    assert mentioned in message
    assert '{"models": {"<model>": {"input": 3, "output": 15}}}' in message


def test_a_missing_price_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Cannot read price file .*nope\.json.*--prices"):
        PriceTable.load(tmp_path / "nope.json")


def test_the_environment_names_the_price_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-mystery-1": {"input": 9, "output": 9}}}))
    monkeypatch.setenv("CONTEXT_CLEANER_PRICES", str(prices))
    assert PriceTable.load().cost("claude-mystery-1", M, 0, 0, 0, 0) == pytest.approx(9)
    monkeypatch.setenv("CONTEXT_CLEANER_PRICES", "")
    assert PriceTable.load().price("claude-mystery-1") is None


# -- through the command line ---------------------------------------------------------------


def analyze_cli(corpus: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "context_cleaner", "analyze", "--source-dir", str(corpus), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONTEXT_CLEANER_PRICES": "", **env},
        timeout=60,
    )


@pytest.mark.slow
def test_cli_prices_flag_and_environment(priced_corpus: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag.json"
    flag.write_text(json.dumps({"models": {"claude-mystery-1": {"input": 2, "output": 4}}}))
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"models": {"claude-mystery-1": {"input": 20, "output": 40}}}))

    def mystery_cost(out: subprocess.CompletedProcess[str]) -> float:
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        return next(m["cost_usd"] for m in doc["models"] if m["model"] == "claude-mystery-1")

    by_flag = analyze_cli(priced_corpus, "--json", "--prices", str(flag), env={})
    assert mystery_cost(by_flag) == pytest.approx(6)
    by_env = analyze_cli(priced_corpus, "--json", env={"CONTEXT_CLEANER_PRICES": str(env_file)})
    assert mystery_cost(by_env) == pytest.approx(60)
    both = analyze_cli(
        priced_corpus,
        "--json",
        "--prices",
        str(flag),
        env={"CONTEXT_CLEANER_PRICES": str(env_file)},
    )
    assert mystery_cost(both) == pytest.approx(6)  # the flag wins
    neither = analyze_cli(priced_corpus, "--json", env={})
    assert mystery_cost(neither) == 0
    assert json.loads(neither.stdout)["unknown_models"] == ["claude-mystery-1"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_cli_with_an_invalid_price_file_exits_1_naming_it(
    priced_corpus: Path, tmp_path: Path, how: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"x": {"input": "cheap", "output": 1}}}))
    if how == "flag":
        out = analyze_cli(priced_corpus, "--json", "--prices", str(bad), env={})
    else:
        out = analyze_cli(priced_corpus, "--json", env={"CONTEXT_CLEANER_PRICES": str(bad)})
    assert out.returncode == 1
    assert out.stdout == ""
    assert "error:" in out.stderr and str(bad) in out.stderr and "not valid" in out.stderr
    assert "Traceback" not in out.stderr


_TOKENS = st.one_of(st.integers(0, 5_000), st.integers(0, 600_000))


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(
        [*pricing.BUNDLED, "claude-sonnet-4-5-20250929", "tiered-out-only", "unknown-model", ""]
    ),
    tokens=st.tuples(_TOKENS, _TOKENS, _TOKENS, _TOKENS, _TOKENS),
    speed=st.sampled_from(["", "standard", "fast"]),
)
@example(model="claude-sonnet-4-5", tokens=(200_001, 0, 0, 0, 0), speed="")
@example(model="claude-sonnet-4-5", tokens=(0, 0, 0, 0, 200_001), speed="fast")
@example(model="tiered-out-only", tokens=(0, 200_001, 0, 0, 0), speed="")
def test_a_records_price_is_the_cost_of_its_tokens_to_the_float(
    model: str, tokens: tuple[int, int, int, int, int], speed: str
) -> None:
    """``price_record`` prices inline what has no count above the long-context threshold:
    the same float as ``cost`` (the reference), tiers, fast mode, unknown models included."""
    table = PriceTable(
        {"tiered-out-only": ModelPrice(input=2, output=10, output_above_200k=30, cache_read=0.3)}
    )
    record = UsageRecord(
        "msg",
        "req",
        "s",
        "s",
        "p",
        "p/s.jsonl",
        1,
        0,
        BASE_MS,
        model,
        False,
        speed,
        False,
        *tokens,
        None,
    )
    for _ in range(2):  # the first call finds the model's prices, the second reuses them
        assert table.price_record(record) == table.cost(model, *tokens, speed)
