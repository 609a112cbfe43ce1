"""Epoch time with length-bucketed batches vs padding every batch to the maximum length.

Both variants run the real `mlcore.trainer.train` for one epoch on the project's encoder
(`mlcore.model`, preset shapes from `mlcore.catalog`) over sequences with lengths uniform in
20..512, in the same process, interleaved (bucketed, padded, padded, bucketed, ...) after an
untimed warm-up, and the medians are compared. Bucketing uses the trainer's defaults
(`bucket_chunk` 3200, i.e. the whole epoch here, sorted by length with `bucket_jitter` ±2%: see
mlcore/sampler.py) and pads each batch to its own longest member; the baseline shuffles plainly
(`bucket_chunk=0`) and pads every batch to 512.

Usage: `python bench/bucketing.py [--preset small|base] [--n 512] [--repeats 3] [--precision fp32] [--threads N]`.
The last line printed is JSON: {"bucketing_speedup": x, "padding_fraction_bucketed": ...,
"padding_fraction_padded": ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from mlcore.model import PRESET_BUILDERS, ClassificationHead, Encoder  # noqa: E402
from mlcore.sampler import BucketBatchSampler, padding_fraction  # noqa: E402
from mlcore.trainer import TrainConfig, train  # noqa: E402

MIN_LEN, MAX_LEN, VOCAB = 20, 512, 25


class SequenceClassifier(nn.Module):
    """Token embedding + learned positions → Encoder → [CLS] classification head (a protein-like task)."""

    def __init__(self, preset: str) -> None:
        super().__init__()
        config = PRESET_BUILDERS[preset](max_len=MAX_LEN)
        self.tok = nn.Embedding(VOCAB, config.d_model, padding_idx=0)
        self.pos = nn.Embedding(MAX_LEN, config.d_model)
        self.encoder = Encoder(config)
        self.head = ClassificationHead(config.d_model, 2, dropout=config.dropout)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> Any:
        T = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos.weight[:T]  # (B, T, D)
        return self.head(self.encoder(x, pad_mask=input_ids != 0).pooled, labels)


def make_collate(pad_to: int | None):
    def collate(examples: list[tuple[np.ndarray, int]]) -> dict[str, Tensor]:
        width = pad_to or max(len(t) for t, _ in examples)
        ids = torch.zeros(len(examples), width, dtype=torch.long)
        for i, (tokens, _) in enumerate(examples):
            ids[i, : len(tokens)] = torch.from_numpy(tokens)
        return {"input_ids": ids, "labels": torch.tensor([y for _, y in examples])}

    return collate


def epoch_time(data: list, preset: str, bucketed: bool, config: TrainConfig) -> float:
    torch.manual_seed(0)
    model = SequenceClassifier(preset)
    cfg = TrainConfig(**{**config.__dict__, "bucket_chunk": config.bucket_chunk if bucketed else 0})
    t0 = time.perf_counter()
    train(model=model, train_set=data, val_set=None, collate=make_collate(None if bucketed else MAX_LEN),
          length=lambda ex: len(ex[0]), evaluate=lambda lo, la: {}, primary_metric="none", greater_is_better=True,
          config=cfg)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=sorted(PRESET_BUILDERS))
    parser.add_argument("--n", type=int, default=512, help="sequences per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per variant")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, args.n)  # uniform in 20..512 inclusive
    data = [(rng.integers(1, VOCAB, n), int(rng.integers(0, 2))) for n in lengths]
    config = TrainConfig(epochs=1, batch_size=args.batch_size, patience=None, precision=args.precision,
                         device="cpu", seed=0)

    batches = list(BucketBatchSampler(lengths, batch_size=args.batch_size, chunk=config.bucket_chunk,
                                       jitter=config.bucket_jitter, seed=0))
    frac_bucketed = padding_fraction(lengths, batches)
    frac_padded = padding_fraction(lengths, batches, pad_to=MAX_LEN)

    # Warm-up (allocator, kernels, lazy imports) on a slice, untimed.
    epoch_time(data[: 2 * args.batch_size], args.preset, True, config)
    epoch_time(data[: 2 * args.batch_size], args.preset, False, config)
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.repeats):
        # Alternate which variant goes first, so drift (thermal, neighbours) hits both alike.
        for bucketed in ((True, False) if r % 2 == 0 else (False, True)):
            t = epoch_time(data, args.preset, bucketed, config)
            times[bucketed].append(t)
            print(f"repeat {r}: {'bucketed' if bucketed else 'padded  '} epoch {t:6.2f} s", flush=True)

    bucketed_s, padded_s = statistics.median(times[True]), statistics.median(times[False])
    print(f"preset={args.preset} n={args.n} batch={args.batch_size} precision={args.precision} "
          f"threads={torch.get_num_threads()}")
    print(f"median epoch: bucketed {bucketed_s:.2f} s, padded {padded_s:.2f} s; padding tokens "
          f"{frac_bucketed:.1%} vs {frac_padded:.1%}")
    print(json.dumps({"bucketing_speedup": round(padded_s / bucketed_s, 3),
                      "padding_fraction_bucketed": round(frac_bucketed, 4),
                      "padding_fraction_padded": round(frac_padded, 4),
                      "epoch_s_bucketed": round(bucketed_s, 3), "epoch_s_padded": round(padded_s, 3),
                      "preset": args.preset, "n": args.n}))


if __name__ == "__main__":
    main()
