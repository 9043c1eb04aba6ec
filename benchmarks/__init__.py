"""Benchmarks and the command line of the synthetic transcript corpus they run on.

The corpus generator is :mod:`context_cleaner.testing.transcripts` (``generate_corpus``
writes a corpus and returns its manifest of exact expected totals);
``generate_corpus.py`` is its command line and ``run.py`` is what ``make bench`` runs.
See ``benchmarks/README.md``.
"""
