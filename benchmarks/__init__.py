"""Benchmarks and the synthetic transcript corpus they run on.

``generate_corpus.generate_corpus(out_dir, target_bytes, seed)`` writes a corpus and
returns its manifest (exact expected totals); ``run.py`` is what ``make bench`` runs.
See ``benchmarks/README.md``.
"""
