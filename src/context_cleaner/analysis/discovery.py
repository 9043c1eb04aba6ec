"""Where the transcripts are (DESIGN §2): roots, then every ``*.jsonl`` below them.

Discovery never fails on a bad folder: symlink loops, unreadable folders and
files that vanish are recorded as problems and the walk goes on.
"""

from __future__ import annotations

import operator
import os
import stat
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from context_cleaner.analysis.tree import TreeRecorder, TreeSnapshot
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.settings import CONFIG_DIR_ENV


class TranscriptFile:
    """One transcript file, located relative to the root it was found under (read-only).

    Discovery makes one per file, tens of thousands for a heavy user: the path is kept
    as the string the walk produced and made a :class:`~pathlib.Path` only when asked
    for (building them all was half of a walk's time); :attr:`path_str` never builds one.
    """

    __slots__ = ("_path", "device", "inode", "mtime_ns", "relative_path", "root", "size")

    root: Path
    relative_path: str
    """``/``-separated path below the root: ``<project>/<session>.jsonl`` and the like."""
    size: int
    mtime_ns: int
    device: int
    inode: int

    def __init__(
        self,
        root: Path,
        path: Path | str,
        relative_path: str,
        size: int,
        mtime_ns: int,
        device: int,
        inode: int,
    ) -> None:
        put = object.__setattr__
        put(self, "root", root)
        put(self, "_path", path)
        put(self, "relative_path", relative_path)
        put(self, "size", size)
        put(self, "mtime_ns", mtime_ns)
        put(self, "device", device)
        put(self, "inode", inode)

    @property
    def path(self) -> Path:
        path = self._path
        if isinstance(path, str):
            path = Path(path)
            object.__setattr__(self, "_path", path)
        return path

    @property
    def path_str(self) -> str:
        """The path as a string (no :class:`~pathlib.Path` built)."""
        return str(self._path)

    def _fields(self) -> tuple[object, ...]:
        return (
            self.root,
            self.path_str,
            self.relative_path,
            self.size,
            self.mtime_ns,
            self.device,
            self.inode,
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TranscriptFile is read-only (cannot set {name!r})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not TranscriptFile:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type[TranscriptFile], tuple[object, ...]]:
        return (TranscriptFile, self._fields())

    def __repr__(self) -> str:
        names = ("root", "path", "relative_path", "size", "mtime_ns", "device", "inode")
        values = (self.root, self.path, *self._fields()[2:])
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(names, values, strict=True))
        return f"TranscriptFile({shown})"

    @classmethod
    def from_stat(
        cls, root: Path, path: Path | str, relative_path: str, st: os.stat_result
    ) -> TranscriptFile:
        """The file as discovery finds it, from a ``stat`` of ``path`` (links followed)."""
        return cls(root, path, relative_path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)

    @property
    def project(self) -> str:
        """The encoded project folder (first path part), or ``""`` for a file at the root."""
        return project_of(self.relative_path)

    @property
    def session_id(self) -> str:
        """DESIGN §3 rule 6: the file's stem, or its session folder for subagent files."""
        return session_of(self.relative_path)

    @property
    def is_subagent(self) -> bool:
        return len(self.relative_path.split("/")) > 2


def storable(text: str) -> str:
    """``text`` as it is stored, sent and shown: itself when it is valid UTF-8 (every
    name Claude Code writes), else with each byte that is not UTF-8 written ``\\xNN``.

    Python hands a file name's undecodable bytes over as lone surrogates, which no
    database, JSON or terminal takes. Only such names change; :func:`os_path` finds the
    file again from what is stored. Runs once per file found: ASCII is decided in C.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


ESCAPED_NAME_TAKEN = (
    "name is not valid UTF-8 and, written with \\xNN, is the name of another entry of its "
    "folder: not read"
)
"""Why a file whose :func:`storable` name is another entry's is not read (that one is)."""


def os_path(root: str, relative_path: str) -> str:
    """The path on disk of the file stored as ``relative_path`` below ``root``.

    The two differ only for a name that is not UTF-8 (:func:`storable`): then the folder
    is listed and the entry whose stored form it is, is taken. A name written literally
    ``\\xNN`` is itself (discovery does not read a file whose stored form is another's).
    """
    joined = f"{root}{os.sep}{relative_path}"
    if "\\x" not in relative_path or os.path.lexists(joined):
        return joined
    path = root
    for part in relative_path.split("/"):
        candidate = f"{path}{os.sep}{part}"
        if "\\x" in part and not os.path.lexists(candidate):
            try:
                names = os.listdir(path)
            except OSError:
                return joined
            found = next((n for n in names if n != part and storable(n) == part), None)
            if found is None:
                return joined
            candidate = f"{path}{os.sep}{found}"
        path = candidate
    return path


def project_of(relative_path: str) -> str:
    """:attr:`TranscriptFile.project` of a file at ``relative_path``."""
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else ""


def session_of(relative_path: str) -> str:
    """:attr:`TranscriptFile.session_id` of a file at ``relative_path``."""
    parts = relative_path.split("/")
    if len(parts) > 2:
        return parts[1]
    stem = parts[-1]
    return stem[: -len(".jsonl")] if stem.endswith(".jsonl") else stem


@dataclass(frozen=True, slots=True)
class DiscoveryProblem:
    """A folder or file that could not be walked, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class Discovery:
    """What discovery found: files (sorted by root, then relative path) and problems."""

    roots: list[Path]
    files: list[TranscriptFile] = field(default_factory=list)
    problems: list[DiscoveryProblem] = field(default_factory=list)
    tree: TreeSnapshot | None = None
    """What the walk saw, when asked for and nothing went wrong (:mod:`.tree`)."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as columns, not an object a file: a reader process discovers for a
        run's process (``BatchReader.discover``), 20,000 files in ~2 MB."""
        files = self.files
        number = {root: n for n, root in enumerate(self.roots)}
        roots = [number[f.root] for f in files]
        relative = [f.relative_path for f in files]
        # A file's path is its root's and its relative path's (the walk joined them so);
        # sent only when one is not.
        joined = all(
            f.path_str == f"{self.roots[n]}{os.sep}{r}"
            for f, n, r in zip(files, roots, relative, strict=True)
        )
        columns = (
            roots,
            None if joined else [f.path_str for f in files],
            relative,
            [f.size for f in files],
            [f.mtime_ns for f in files],
            [f.device for f in files],
            [f.inode for f in files],
        )
        return (_discovery_of, (self.roots, columns, self.problems, self.tree))


def _discovery_of(
    roots: list[Path],
    columns: tuple[Any, ...],
    problems: list[DiscoveryProblem],
    tree: TreeSnapshot | None,
) -> Discovery:
    """:meth:`Discovery.__reduce__`'s columns as a discovery again."""
    numbers, paths, relative, sizes, mtimes, devices, inodes = columns
    if paths is None:
        prefixes = [f"{root}{os.sep}" for root in roots]
        paths = [prefixes[n] + r for n, r in zip(numbers, relative, strict=True)]
    files = list(
        map(
            TranscriptFile,
            [roots[n] for n in numbers],
            paths,
            relative,
            sizes,
            mtimes,
            devices,
            inodes,
        )
    )
    return Discovery(roots, files, problems, tree)


def default_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The candidate roots, existing or not, in the order Claude Code uses them.

    ``CLAUDE_CONFIG_DIR`` (one path or a comma-separated list; each entry the
    config folder or its ``projects/``) replaces the two defaults.
    """
    env = os.environ if environ is None else environ
    configured = env.get(CONFIG_DIR_ENV, "").strip()
    if configured:
        roots = []
        for entry in configured.split(","):
            entry = entry.strip()
            if not entry:
                continue
            path = Path(entry).expanduser()
            roots.append(path if path.name == "projects" else path / "projects")
        return roots
    home = Path(env.get("HOME") or Path.home())
    return [home / ".config" / "claude" / "projects", home / ".claude" / "projects"]


def resolve_roots(
    source_dirs: Sequence[str | os.PathLike[str]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """The roots that exist: ``source_dirs`` when given (they override all), else the defaults.

    A ``--source-dir`` may name the config folder (holding ``projects/``) or the
    projects folder itself. Raises ``SourceNotFoundError`` naming every place
    looked at when none exists.
    """
    if source_dirs:
        candidates = []
        for entry in source_dirs:
            path = Path(entry).expanduser()
            if path.name != "projects" and (path / "projects").is_dir():
                path = path / "projects"
            candidates.append(path)
    else:
        candidates = default_roots(environ)
    unique: list[Path] = []
    for path in candidates:
        # Absolute, so that what is committed for a file does not depend on the working folder.
        path = Path(os.path.abspath(path))
        if (shown := storable(str(path))) != str(path):
            raise SourceNotFoundError(
                f"The transcript folder {shown} has a path that is not valid "
                "UTF-8, which the database cannot store: make a link to it whose path is "
                "(ln -s <folder> ~/claude-projects) and pass that with --source-dir."
            )
        if path.is_dir() and path not in unique:
            unique.append(path)
    unique = _outermost(unique)
    if not unique:
        looked = ", ".join(str(p) for p in candidates) or "(nothing)"
        hint = (
            "pass --source-dir with the folder holding your transcripts"
            if source_dirs
            else f"set {CONFIG_DIR_ENV} or pass --source-dir"
        )
        raise SourceNotFoundError(f"No transcript folder found (looked in: {looked}); {hint}.")
    return unique


def _outermost(roots: list[Path]) -> list[Path]:
    """``roots`` less any that is the same folder as an earlier one or lies inside another
    (``~/.config/claude`` linked to ``~/.claude``, or ``--source-dir`` given a projects
    folder and one of its projects): each file is then found once, under the outer root,
    where it has its project. Before, such files were read and tracked twice."""
    real = [os.path.realpath(r) for r in roots]
    kept = []
    for n, (root, path) in enumerate(zip(roots, real, strict=True)):
        inside = any(other != path and folder_below(path, other) is not None for other in real)
        if not inside and path not in real[:n]:
            kept.append(root)
    return kept


def folder_below(inner: str, outer: str) -> str | None:
    """The relative path prefix (``""`` or ``"a/b/"``) of the folder ``inner`` below
    ``outer`` (both real paths), or None when it is not at or below it."""
    if inner == outer:
        return ""
    base = outer.rstrip(os.sep) + os.sep
    if not inner.startswith(base):
        return None
    return inner[len(base) :].replace(os.sep, "/").strip("/") + "/"


def _walk(
    root: Path, discovery: Discovery, tree: TreeRecorder | None = None
) -> Iterable[TranscriptFile]:
    """Depth-first walk following symlinks, with loops and errors reported.

    Folders reached through a symlink are walked after every real folder, so a
    link to a folder of the same root (an alias) never claims its files: they keep
    their real path, and with it their project and session.
    """
    is_dir, is_file = stat.S_ISDIR, stat.S_ISREG
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(root, "")]
    linked: deque[tuple[Path, str]] = deque()
    while stack or linked:
        folder, prefix = stack.pop() if stack else linked.popleft()
        try:
            st = folder.stat()
        except OSError as exc:
            discovery.problems.append(DiscoveryProblem(storable(str(folder)), _describe(exc)))
            continue
        if tree is not None and not prefix:
            tree.root(st)
        ident = (st.st_dev, st.st_ino)
        if ident in seen_dirs:
            discovery.problems.append(
                DiscoveryProblem(storable(str(folder)), "symlink loop: already walked")
            )
            continue
        seen_dirs.add(ident)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            discovery.problems.append(DiscoveryProblem(storable(str(folder)), _describe(exc)))
            continue
        subdirs: list[tuple[Path, str]] = []
        stats: list[os.stat_result] = []
        listed: set[str] | None = None
        for entry in entries:
            name = stored = entry.name
            if not name.isascii():
                stored = storable(name)
                if stored != name:
                    # Not UTF-8: stored written \xNN, unless that is another entry's name.
                    listed = {e.name for e in entries} if listed is None else listed
                    if stored in listed:
                        problem = DiscoveryProblem(storable(entry.path), ESCAPED_NAME_TAKEN)
                        discovery.problems.append(problem)
                        continue
                    listed.add(stored)
                    if tree is not None:
                        tree.storable = False
            try:
                st = entry.stat()  # follows symlinks
            except OSError as exc:
                discovery.problems.append(DiscoveryProblem(storable(entry.path), _describe(exc)))
                continue
            if tree is not None:
                stats.append(st)
            mode = st.st_mode
            if is_dir(mode):
                if entry.is_symlink():
                    linked.append((Path(entry.path), f"{prefix}{stored}/"))
                else:
                    subdirs.append((Path(entry.path), f"{prefix}{stored}/"))
            elif is_file(mode) and name.endswith(".jsonl"):
                yield TranscriptFile.from_stat(root, entry.path, prefix + stored, st)
        if tree is not None:
            tree.folder(str(folder), [e.name for e in entries], stats)
        stack.extend(reversed(subdirs))


def _describe(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


_BY_RELATIVE_PATH = operator.attrgetter("relative_path")


def discover(roots: Sequence[Path], *, snapshot: bool = False) -> Discovery:
    """Every ``*.jsonl`` below each root, recursively; problems recorded, never raised.

    ``snapshot``: also keep what the walk saw (``Discovery.tree``) when it met no problem.
    """
    discovery = Discovery(roots=list(roots))
    tree = TreeRecorder() if snapshot else None
    for root in roots:
        discovery.files.extend(sorted(_walk(root, discovery, tree), key=_BY_RELATIVE_PATH))
    if tree is not None and not discovery.problems and tree.storable:
        discovery.tree = tree.snapshot([str(r) for r in roots])
    return discovery
