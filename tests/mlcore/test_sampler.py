"""mlcore/sampler.py: coverage, determinism, bucketing quality, DDP sharding, resume state."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.sampler import BucketBatchSampler, eval_batches, padding_fraction

LENGTHS = np.random.default_rng(0).integers(20, 513, 1000).tolist()  # the bench's distribution


def test_every_index_once_per_epoch_and_batch_sizes() -> None:
    sampler = BucketBatchSampler(LENGTHS, batch_size=32, chunk=256, seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert len(batches) == len(sampler) == 32
    assert sorted(len(b) for b in batches)[1:] == [32] * 31  # only one short batch (1000 = 31*32 + 8)


def test_deterministic_per_seed_and_epoch() -> None:
    a = BucketBatchSampler(LENGTHS, batch_size=32, seed=3)
    b = BucketBatchSampler(LENGTHS, batch_size=32, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(BucketBatchSampler(LENGTHS, batch_size=32, seed=4)) != list(a)
    # A new sampler restored from a state dict yields what the old one would have.
    a.set_epoch(5)
    c = BucketBatchSampler(LENGTHS, batch_size=32, seed=0)
    c.load_state_dict(a.state_dict())
    assert list(c) == list(a)
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler(LENGTHS, batch_size=16).load_state_dict(a.state_dict())


def test_bucketing_cuts_padding_and_batches_stay_shuffled() -> None:
    bucketed = list(BucketBatchSampler(LENGTHS, batch_size=32, chunk=256, seed=0))
    plain = list(BucketBatchSampler(LENGTHS, batch_size=32, chunk=0, seed=0))
    fb, fp = padding_fraction(LENGTHS, bucketed), padding_fraction(LENGTHS, plain)
    assert fb < 0.1 and fp > 0.3, (fb, fp)
    assert padding_fraction(LENGTHS, bucketed, pad_to=512) > 0.45  # padding to the max length
    # Batch order is shuffled: the max length per batch is not monotonic.
    maxima = [max(LENGTHS[i] for i in b) for b in bucketed]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_chunk_rounds_up_to_whole_batches() -> None:
    sampler = BucketBatchSampler(list(range(100)), batch_size=32, chunk=40)
    assert sampler.chunk == 64
    sizes = sorted(len(b) for b in sampler)
    assert sizes == [4, 32, 32, 32]


def test_ddp_shards_are_disjoint_cover_everything_and_equal_length() -> None:
    n = 1000 - 32 * 5  # 27 batches: not a multiple of 2 or 4
    for world in (2, 4):
        shards = [list(BucketBatchSampler(LENGTHS[:n], batch_size=32, seed=1, rank=r, world_size=world))
                  for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # every rank steps the same number of times
        assert all(len(s) == len(BucketBatchSampler(LENGTHS[:n], batch_size=32, rank=0, world_size=world))
                   for s in shards)
        seen = [i for s in shards for b in s for i in b]
        assert set(seen) == set(range(n))  # everything covered; wrap-around repeats only a few batches
        assert len(seen) - n < world * 32


def test_eval_batches_sorted_by_length() -> None:
    batches = eval_batches(LENGTHS, 64)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(LENGTHS)))
    assert [LENGTHS[i] for i in flat] == sorted(LENGTHS, reverse=True)


def test_jittered_sort_keeps_padding_low_and_changes_batches_every_epoch() -> None:
    exact = BucketBatchSampler(LENGTHS, batch_size=32, chunk=len(LENGTHS), seed=0)
    jittered = BucketBatchSampler(LENGTHS, batch_size=32, chunk=len(LENGTHS), jitter=0.02, seed=0)
    small_chunks = BucketBatchSampler(LENGTHS, batch_size=32, chunk=256, seed=0)

    def co_batched(sampler: BucketBatchSampler, epoch: int) -> set[tuple[int, int]]:
        sampler.set_epoch(epoch)
        return {(a, b) for batch in sampler for a in batch for b in batch if a < b}

    def repeated(sampler: BucketBatchSampler) -> float:  # pairs sharing a batch in epoch 0 and again in 1
        first, second = co_batched(sampler, 0), co_batched(sampler, 1)
        return len(first & second) / len(first)

    # An exact sort of the whole epoch nearly repeats its batches (only ties move); the jitter draws
    # different batches each epoch.
    assert repeated(exact) > 0.9
    assert repeated(jittered) < 0.75, repeated(jittered)
    for epoch in range(3):
        for s in (jittered, small_chunks):
            s.set_epoch(epoch)
        assert sorted(i for b in jittered for i in b) == list(range(len(LENGTHS)))
        fj, fc = padding_fraction(LENGTHS, list(jittered)), padding_fraction(LENGTHS, list(small_chunks))
        assert fj < 0.06 and fj < 0.7 * fc, (fj, fc)
    # Still a pure function of (seed, epoch), and the jitter is part of the resume state.
    again = BucketBatchSampler(LENGTHS, batch_size=32, chunk=len(LENGTHS), jitter=0.02, seed=0)
    again.set_epoch(2)
    assert list(again) == list(jittered)
    with pytest.raises(ValueError, match="jitter"):
        exact.load_state_dict(jittered.state_dict())
    with pytest.raises(ValueError, match="jitter must be in"):
        BucketBatchSampler(LENGTHS, batch_size=32, jitter=1.5)
