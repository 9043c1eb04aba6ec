"""The one generator of Claude Code transcripts, for the tests, the benchmarks and the testing API.

Three ways to make transcripts, each with the totals a correct analyser must report:

    generate_corpus(out, bytes, seed)      realistic corpus of any size + manifest (benchmarks)
    generate_transcripts(out, ...)         compact corpus of a number of tokens (testing API)
    lines.assistant(...), lines.usage(...)  hand-built lines; lines.expected_counts(corpus)
    strategies.corpora()                   Hypothesis strategies over those lines (tests only)

Nothing here imports more than the standard library and :mod:`context_cleaner.analysis`;
:mod:`.strategies` needs Hypothesis (the ``dev`` extra) and is never imported from here.
"""

from context_cleaner.testing.transcripts.corpus import (
    GENERATOR_VERSION,
    format_size,
    generate_corpus,
    parse_size,
)
from context_cleaner.testing.transcripts.expected import TOKEN_KEYS, ExpectedUsage
from context_cleaner.testing.transcripts.sample import SampleCorpus, generate_transcripts

__all__ = [
    "GENERATOR_VERSION",
    "TOKEN_KEYS",
    "ExpectedUsage",
    "SampleCorpus",
    "format_size",
    "generate_corpus",
    "generate_transcripts",
    "parse_size",
]
