"""The benchmark corpus generator: its manifest is what the analysis reports, its bytes
depend only on the seed and size, and its command line runs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from context_cleaner import EnhancedTokenCounter
from context_cleaner.testing.transcripts import TOKEN_KEYS, generate_corpus

REPO = Path(__file__).resolve().parents[2]


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.jsonl")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_a_small_corpus_equals_its_manifest(tmp_path: Path) -> None:
    manifest = generate_corpus(tmp_path, 2_000_000, seed=1)
    report = EnhancedTokenCounter([str(tmp_path / "projects")]).analyze()
    assert report.skipped_lines_total == 0
    assert report.totals.model_dump(include=set(TOKEN_KEYS)) == manifest["totals"]
    days = [d.model_dump(include={"date", *TOKEN_KEYS}) for d in report.days]
    assert days == manifest["days"]
    models = [m.model_dump(include={"model", *TOKEN_KEYS}) for m in report.models]
    assert sorted(models, key=lambda m: m["model"]) == manifest["models"]
    assert sum(f.size for f in report.files) == manifest["bytes"]


def test_the_same_seed_and_size_give_the_same_bytes(tmp_path: Path) -> None:
    first = generate_corpus(tmp_path / "a", 400_000, seed=9)
    again = generate_corpus(tmp_path / "b", 400_000, seed=9)
    other = generate_corpus(tmp_path / "c", 400_000, seed=10)
    assert first == again
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c") and first != other


def test_the_command_line_writes_a_corpus(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "generate_corpus.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--size", "300KB", "--seed", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "expected total_tokens" in done.stdout
    assert (tmp_path / "manifest.json").is_file()
    bad = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--size", "lots"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "not a size" in bad.stderr
    spec = importlib.util.spec_from_file_location("generate_corpus_cli", script)
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--out", str(tmp_path / "m"), "--files", "12"]) == 0  # the many-files shape
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["files"] == 12


#: The large shape's bytes for (400 KB, seed 9): benchmark corpora must not change under
#: a generator change (bump GENERATOR_VERSION and this digest together if they must).
LARGE_SHAPE_DIGEST = "65b1ef5e5bf6ea2df5cdc7283ab9b1c14e580ccff0e3aac4c3d9f7c9c4cccaed"


def test_the_large_shape_keeps_its_bytes(tmp_path: Path) -> None:
    generate_corpus(tmp_path, 400_000, seed=9)
    assert _tree_digest(tmp_path) == LARGE_SHAPE_DIGEST


def test_the_many_files_shape_equals_its_manifest(tmp_path: Path) -> None:
    manifest = generate_corpus(tmp_path / "a", 0, seed=5, target_files=20)
    assert manifest["files"] == 20 and manifest["shape"] == "many-files"
    assert manifest["subagent_files"] == 0 and manifest["target_files"] == 20
    report = EnhancedTokenCounter([str(tmp_path / "a" / "projects")]).analyze()
    assert report.skipped_lines_total == 0
    assert report.totals.model_dump(include=set(TOKEN_KEYS)) == manifest["totals"]
    assert generate_corpus(tmp_path / "b", 0, seed=5, target_files=20) == manifest
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
