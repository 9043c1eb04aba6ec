"""Offline prices per model (DESIGN §3 rule 7): never fetched at run time.

Prices are USD per million tokens. Cache writes cost 1.25x the input price
(5-minute) or 2x (1-hour); cache reads 0.1x. Models with a long-context tier
(Sonnet 4, 4.5, 4.6) charge the higher prices for the tokens of a request
beyond 200k, per token type, as the reference analyser does. Fast mode
(``usage.speed == "fast"``) multiplies a request's cost by the model's
``fast_multiplier`` (6 for Opus 4.6). A user file (JSON)
can add models or override any price; a model found nowhere is priced 0 and
reported, never guessed.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec

from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import PRICES_ENV

if TYPE_CHECKING:
    from context_cleaner.analysis.records import UsageRecord

TIER_THRESHOLD = 200_000
PER_TOKEN = 1e-6

#: A price in USD per million tokens, or a cost factor: never negative, at most 1,000,000
#: (a larger one, 1e308 say, could make every total infinite).
Price = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Prices for one model, USD per million tokens (msgspec: validated on decode, cheap to
    import, which a one-shot ``sync`` notices)."""

    input: Price
    output: Price
    cache_write_5m: Price | None = None
    """Default 1.25x input."""
    cache_write_1h: Price | None = None
    """Default 2x input."""
    cache_read: Price | None = None
    """Default 0.1x input."""
    input_above_200k: Price | None = None
    output_above_200k: Price | None = None
    fast_multiplier: Price = 1.0
    """Cost factor for ``speed == "fast"``."""

    def cache_prices(self) -> tuple[float, float, float]:
        """The 5-minute and 1-hour cache write prices and the cache read price: as given,
        else 1.25x, 2x and 0.1x the input price."""
        return (
            self.cache_write_5m if self.cache_write_5m is not None else self.input * 1.25,
            self.cache_write_1h if self.cache_write_1h is not None else self.input * 2.0,
            self.cache_read if self.cache_read is not None else self.input * 0.1,
        )

    def cost(
        self, input_tokens: int, output_tokens: int, cache_5m: int, cache_1h: int, cache_read: int
    ) -> float:
        """The USD cost of one request's tokens."""
        tier_in = self.input_above_200k
        tier_out = self.output_above_200k
        w5, w1, rd = self.cache_prices()
        scale = (tier_in / self.input) if (tier_in is not None and self.input) else None
        return PER_TOKEN * (
            _tiered(input_tokens, self.input, tier_in)
            + _tiered(output_tokens, self.output, tier_out)
            + _tiered(cache_5m, w5, w5 * scale if scale else None)
            + _tiered(cache_1h, w1, w1 * scale if scale else None)
            + _tiered(cache_read, rd, rd * scale if scale else None)
        )


def _tiered(tokens: int, base: float, above: float | None) -> float:
    if above is None or tokens <= TIER_THRESHOLD:
        return tokens * base
    return TIER_THRESHOLD * base + (tokens - TIER_THRESHOLD) * above


class PriceFile(msgspec.Struct, forbid_unknown_fields=True):
    """The user override file: ``{"models": {"<model name>": {"input": 3, "output": 15}}}``."""

    models: dict[str, ModelPrice]


_OPUS_OLD = ModelPrice(input=15, output=75)
_OPUS_NEW = ModelPrice(input=5, output=25)
_OPUS_4_6 = ModelPrice(input=5, output=25, fast_multiplier=6.0)  # fast mode: 6x
_SONNET = ModelPrice(input=3, output=15, input_above_200k=6, output_above_200k=22.5)

#: Bundled prices by normalised model family (date suffix and provider prefix removed).
BUNDLED: dict[str, ModelPrice] = {
    "claude-opus-4": _OPUS_OLD,
    "claude-opus-4-0": _OPUS_OLD,
    "claude-opus-4-1": _OPUS_OLD,
    "claude-opus-4-5": _OPUS_NEW,
    "claude-opus-4-6": _OPUS_4_6,
    "claude-sonnet-4": _SONNET,
    "claude-sonnet-4-0": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4-6": _SONNET,
    "claude-haiku-4-5": ModelPrice(input=1, output=5),
    "claude-3-5-haiku": ModelPrice(input=0.8, output=4),
    "claude-3-7-sonnet": ModelPrice(input=3, output=15),
    "claude-3-5-sonnet": ModelPrice(input=3, output=15),
    "claude-3-opus": ModelPrice(input=15, output=75),
    "claude-3-haiku": ModelPrice(input=0.25, output=1.25),
}

#: Models that carry no billable usage (Claude Code's own placeholder responses).
FREE_MODELS = frozenset({"<synthetic>", ""})

_DATE_SUFFIX = re.compile(r"-(\d{8})$")
#: Bedrock's region or inference-profile prefix (``us.``, ``apac.``, ``us-gov.``, ``global.``)
#: before ``anthropic.``, or a ``anthropic/`` provider prefix.
_PROVIDER_PREFIX = re.compile(r"^(?:[a-z]+(?:-[a-z]+)*\.)?anthropic[./]")
_PROVIDER_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|@\d{8}|\[1m\])$")
_OPUS_VERSION = re.compile(r"^claude-opus-(\d+)-(\d+)$")


def normalise_model(model: str) -> str:
    """``us.anthropic.claude-opus-4-1-20250805-v1:0`` -> ``claude-opus-4-1``."""
    name = _PROVIDER_PREFIX.sub("", model.strip().lower())
    previous = None
    while previous != name:
        previous = name
        name = _PROVIDER_SUFFIX.sub("", name)
        name = _DATE_SUFFIX.sub("", name)
    return name


class PriceTable:
    """Looks up a model's price: the user file first, then the bundled table."""

    def __init__(self, overrides: dict[str, ModelPrice] | None = None) -> None:
        items = list((overrides or {}).items())
        # A family name ("claude-sonnet-4-5") prices the family, whatever the order of the file;
        # a dated or prefixed name prices itself exactly, and the family only when not named.
        items.sort(key=lambda kv: normalise_model(kv[0]) == kv[0].strip().lower())
        self._overrides = {normalise_model(k): v for k, v in items}
        self._exact = {k.lower(): v for k, v in (overrides or {}).items()}
        self._cache: dict[str, ModelPrice | None] = {}
        self._rates: dict[str, _Rates | None] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> PriceTable:
        """The bundled table with ``path`` (or ``$CONTEXT_CLEANER_PRICES``) laid over it."""
        chosen = path or os.environ.get(PRICES_ENV)
        if not chosen:
            return cls()
        return cls(_read_price_file(Path(chosen)).models)

    def price(self, model: str) -> ModelPrice | None:
        """The price for ``model``, or ``None`` when nobody knows it."""
        if model in self._cache:
            return self._cache[model]
        found = self._lookup(model)
        self._cache[model] = found
        return found

    def _lookup(self, model: str) -> ModelPrice | None:
        if model.lower() in self._exact:
            return self._exact[model.lower()]
        name = normalise_model(model)
        if name in self._overrides:
            return self._overrides[name]
        if name in BUNDLED:
            return BUNDLED[name]
        match = _OPUS_VERSION.match(name)
        if match and (int(match[1]), int(match[2])) >= (4, 5):
            return _OPUS_NEW  # "Opus 4.5 and later"
        return None

    def is_known(self, model: str) -> bool:
        return model in FREE_MODELS or self.price(model) is not None

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_5m: int,
        cache_1h: int,
        cache_read: int,
        speed: str = "",
    ) -> float:
        """USD for one request; 0 for a model nobody knows (callers report those)."""
        price = self.price(model)
        if price is None:
            return 0.0
        cost = price.cost(input_tokens, output_tokens, cache_5m, cache_1h, cache_read)
        return cost * price.fast_multiplier if speed == "fast" else cost

    def price_record(self, record: UsageRecord) -> float:
        """USD for one record by this table (whether or not the line has ``costUSD``).

        The run's process prices most records it commits: a model's five prices are looked
        up once, and a request with no count above the long-context threshold is priced
        inline, by the same operations in the same order as :meth:`ModelPrice.cost` (so
        to the same float); any other goes through :meth:`cost`.
        """
        model = record.model
        try:
            rates = self._rates[model]
        except KeyError:
            rates = self._rates[model] = _rates_of(self.price(model))
        if rates is None:
            return 0.0
        i, o = record.input_tokens, record.output_tokens
        c5, c1, cr = (
            record.cache_creation_5m_tokens,
            record.cache_creation_1h_tokens,
            record.cache_read_tokens,
        )
        base_in, base_out, w5, w1, rd, tiered, fast = rates
        if tiered and (
            i > TIER_THRESHOLD
            or o > TIER_THRESHOLD
            or c5 > TIER_THRESHOLD
            or c1 > TIER_THRESHOLD
            or cr > TIER_THRESHOLD
        ):
            return self.cost(model, i, o, c5, c1, cr, record.speed)
        cost = PER_TOKEN * (i * base_in + o * base_out + c5 * w5 + c1 * w1 + cr * rd)
        return cost * fast if record.speed == "fast" else cost


#: A model's prices as :meth:`PriceTable.price_record` uses them: input, output, 5-minute
#: and 1-hour cache writes, cache reads, whether any is tiered, the fast-mode factor.
_Rates = tuple[float, float, float, float, float, bool, float]


def _rates_of(price: ModelPrice | None) -> _Rates | None:
    if price is None:
        return None
    return (
        price.input,
        price.output,
        *price.cache_prices(),
        price.input_above_200k is not None or price.output_above_200k is not None,
        price.fast_multiplier,
    )


def _read_price_file(path: Path) -> PriceFile:
    """The validated file; re-read whenever it changed (a long-running process sees edits)."""
    try:
        st = path.expanduser().stat()
    except OSError:
        st = None
    key = (st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None
    return _parse_price_file(path, key)


@lru_cache(maxsize=8)
def _parse_price_file(path: Path, _version: tuple[int, int, int] | None) -> PriceFile:
    try:
        raw = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read price file {path}: {exc.strerror or exc}; fix the path in "
            f"--prices or ${PRICES_ENV}."
        ) from exc
    try:
        return msgspec.json.decode(raw, type=PriceFile)
    except msgspec.DecodeError as exc:
        first = str(exc).splitlines()
        raise ConfigurationError(
            f"Price file {path} is not valid: {' '.join(first[:3])}. Expected "
            '{"models": {"<model>": {"input": 3, "output": 15}}} (USD per million tokens).'
        ) from exc
