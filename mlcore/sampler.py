"""Length-bucketed batching: little padding for variable-length inputs, still shuffled.

`BucketBatchSampler` yields lists of dataset indices. Each epoch it shuffles all indices, cuts
them into chunks of `chunk` examples, sorts each chunk by a jittered length (the length times a
random factor within ±`jitter`, drawn afresh each epoch), splits it into batches and shuffles the
batch order. Batches then hold examples of similar length while every epoch still sees different
batches in a different order.

Why a large chunk with jitter rather than small chunks: with an exact sort, the chunk alone decides
how batches vary between epochs, and small chunks cost padding. Lengths uniform in 20..512, batch 32
(the bucketing bench's distribution), 512 / 4,096 records:
- chunks of 256, exact sort: 9.6% / 10.1% padding tokens;
- one chunk, exact sort: 5.0% / 1.4%, but the same batches every epoch (only ties reshuffle);
- one chunk, ±2% jitter (the default): 5.9% / 2.1%, and at most 1 of 16 batches repeats between two
  epochs at 512 records, none of 128 at 4,096.
The trainer's default chunk is 100 batches (torchtext's BucketIterator sorts within the same pool).

The order is a pure function of (seed, epoch), never of a global RNG, so an exact resume only has
to store those two numbers (`state_dict()`), and every DDP rank computes the same global batch list
and takes its own shard (`rank`, `world_size`) without communicating.

`eval_batches` is the inference counterpart: all indices sorted by length, no shuffle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["BucketBatchSampler", "eval_batches", "padding_fraction"]


class BucketBatchSampler:
    """Batches of indices of similar length; deterministic in (seed, epoch); sharded per DDP rank.

    `chunk <= 0` turns bucketing off (a plain shuffle). The chunk is rounded up to a multiple of
    `batch_size`, so only the very last batch of an epoch can be short. `jitter` (0 <= jitter < 1) is
    the relative length noise of the sort key (module docstring); 0 sorts exactly.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        batch_size: int,
        chunk: int = 256,
        jitter: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.chunk = math.ceil(chunk / batch_size) * batch_size if chunk > 0 else 0
        self.jitter = float(jitter) if self.chunk else 0.0
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def state_dict(self) -> dict[str, float]:
        """Everything needed to reproduce the next epoch's batches."""
        return {"seed": self.seed, "epoch": self.epoch, "n": len(self.lengths), "chunk": self.chunk,
                "batch_size": self.batch_size, "jitter": self.jitter}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore a `state_dict()`; refuses one made for a different dataset or batching."""
        mine = self.state_dict()
        state = {"jitter": 0.0, **state}  # states saved before the jitter existed sorted exactly
        for key in ("n", "chunk", "batch_size", "jitter"):
            if state[key] != mine[key]:
                raise ValueError(f"sampler state was saved with {key}={state[key]}, now {mine[key]}")
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def global_batches(self) -> list[np.ndarray]:
        """The whole epoch's batches (all ranks), in the order they will be taken."""
        n = len(self.lengths)
        # A SeedSequence of (seed, epoch) gives independent streams per epoch with no global state.
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        key = self.lengths.astype(np.float64)
        if self.chunk and self.shuffle and self.jitter > 0.0:
            key = key * np.exp(rng.uniform(-self.jitter, self.jitter, n))  # per example, fresh each epoch
        batches: list[np.ndarray] = []
        step = self.chunk or n
        for start in range(0, n, step):
            idx = order[start:start + step]
            if self.chunk:
                # Stable sort so equal keys keep their shuffled order (determinism).
                idx = idx[np.argsort(key[idx], kind="stable")]
            batches.extend(idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size))
        if self.shuffle and self.chunk:
            # Without this, every chunk would go short → long, a length pattern the optimizer sees.
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        if self.world_size > 1:
            batches = _shard(batches, self.rank, self.world_size)
        return (b.tolist() for b in batches)

    def __len__(self) -> int:
        n_batches = math.ceil(len(self.lengths) / self.batch_size)
        return math.ceil(n_batches / self.world_size)


def _shard(batches: list[np.ndarray], rank: int, world_size: int) -> list[np.ndarray]:
    """Rank `rank`'s batches; the list is padded by wrapping so every rank steps the same count.

    DDP needs equal step counts on all ranks (a rank with one batch fewer would hang the others in
    the gradient all-reduce), so a few batches from the start are repeated, as DistributedSampler does.
    """
    if not batches:
        return []
    total = math.ceil(len(batches) / world_size) * world_size
    padded = batches + [batches[i % len(batches)] for i in range(total - len(batches))]
    return padded[rank::world_size]


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batches: indices sorted by length (longest first), so padding is minimal."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]], pad_to: int | None = None) -> float:
    """Share of padding tokens when each batch is padded to its longest member (or to `pad_to`)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    real = padded = 0
    for b in batches:
        lb = lengths[np.asarray(b, dtype=np.int64)]
        real += int(lb.sum())
        padded += (pad_to if pad_to is not None else int(lb.max())) * len(lb)
    return 1.0 - real / padded if padded else 0.0
