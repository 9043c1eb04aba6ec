"""The spec's ``MigrationMemoryManager``: a run's private memory, sampled and bounded.

Every run has one (``RunOptions.memory``). It samples the private memory of the run's
process tree (this process, the engine in it, the reader processes:
:mod:`context_cleaner.observability.process_memory`) at most every
:data:`SAMPLE_EVERY` seconds, keeps the peaks the run reports
(``peak_memory_usage_mb``: private; ``peak_resident_memory_mb``: resident), and says
when the run nears its bound (:data:`HIGH_WATER` of ``max_memory_mb``). The pipeline
then commits what it has gathered at once instead of gathering more (``pipeline.Gatherer``):
units shrink to what fits, down to one read batch. What a unit holds is freed by its
commit (the engine gives its freed memory back after each one); a read batch in flight
holds its records only, ~1% of its bytes.

The bound is on what the run adds to its process tree: the tree's private memory less
what the tree held when the manager was made (``baseline_usage``). From the command line
that is all but the interpreter and the package (~30-40 MB); in a notebook, a web
application or a test runner the host's own memory (its libraries, its other
subprocesses) is not the run's, and a run there must not shrink its commits for it.
``count_host=True`` bounds the whole tree instead, as the spec's sketch does.

The bound steers, it does not cap: the engine, Python and the readers need ~100-170 MB
whatever the corpus (docs/benchmarks.md), so a bound below that makes every read batch
its own commit, and the run goes on, slower, rather than fail.
"""

from __future__ import annotations

import gc
import threading
import time

from context_cleaner.errors import ConfigurationError
from context_cleaner.observability.process_memory import MemorySample, sample_tree
from context_cleaner.settings import MAX_MEMORY_MB

#: Seconds between two samples (a sample costs ~0.2-2 ms; see process_memory).
SAMPLE_EVERY = 0.25
#: Share of the bound from which the run commits at once rather than gather more.
HIGH_WATER = 0.8


class MigrationMemoryManager:
    """Memory management for large-scale migration operations (the spec's class).

    ``current_usage``: the private memory of the run's process tree at the last sample,
    in bytes; ``peak_usage`` and ``peak_resident``: the largest sampled; ``run_usage``:
    what the run added (see the module docstring).
    """

    def __init__(
        self,
        max_memory_mb: int = MAX_MEMORY_MB,
        *,
        sample_every: float = SAMPLE_EVERY,
        count_host: bool = False,
    ):
        if max_memory_mb <= 0:
            raise ConfigurationError(f"max_memory_mb must be positive (got {max_memory_mb}).")
        self.max_memory_mb = max_memory_mb
        self.max_memory_bytes = max_memory_mb * 1024 * 1024
        self.sample_every = sample_every
        self.current_usage = 0
        self.current_resident = 0
        self.peak_usage = 0
        self.peak_resident = 0
        self.samples = 0
        self.pressured = 0
        """Samples at or above the high-water mark (each one ended a unit early)."""
        self._at = float("-inf")
        self._lock = threading.Lock()
        self.baseline_usage = 0
        """The tree's private memory before the run (0 with ``count_host``)."""
        if not count_host:
            self.baseline_usage = self.sample(force=True).private

    @property
    def run_usage(self) -> int:
        """Private memory the run added to its process tree at the last sample, in bytes."""
        return max(0, self.current_usage - self.baseline_usage)

    def __repr__(self) -> str:
        return f"MigrationMemoryManager(max_memory_mb={self.max_memory_mb})"

    def sample(self, *, force: bool = False) -> MemorySample:
        """Sample the tree now (``force``) or when the last sample is older than
        ``sample_every``; returns the latest sample either way."""
        with self._lock:
            now = time.monotonic()
            if force or now - self._at >= self.sample_every:
                self._at = now
                taken = sample_tree()
                self.samples += 1
                self.current_usage, self.current_resident = taken.private, taken.resident
                self.peak_usage = max(self.peak_usage, taken.private)
                self.peak_resident = max(self.peak_resident, taken.resident)
                if taken.private - self.baseline_usage >= HIGH_WATER * self.max_memory_bytes:
                    self.pressured += 1
            return MemorySample(self.current_usage, self.current_resident, 0)

    def near_limit(self) -> bool:
        """True when the run's private memory is at :data:`HIGH_WATER` of the bound or above
        (sampled at most every ``sample_every`` seconds)."""
        self.sample()
        return self.run_usage >= HIGH_WATER * self.max_memory_bytes

    def check(self, required_bytes: int = 0) -> bool:
        """Whether ``required_bytes`` more fit under the bound now."""
        self.sample()
        return self.run_usage + required_bytes <= self.max_memory_bytes

    def cleanup(self) -> bool:
        """Collect Python's garbage when near the bound; True when it did (then resampled)."""
        if not self.near_limit():
            return False
        gc.collect()
        self.sample(force=True)
        return True

    async def check_memory_availability(self, required_bytes: int) -> bool:
        """Check if enough memory is available for an operation (the spec's coroutine)."""
        return self.check(required_bytes)

    async def cleanup_if_needed(self) -> None:
        """Force garbage collection if memory usage is high (the spec's coroutine)."""
        self.cleanup()
