"""Latency timing in the compression report: repeated until stable or flagged unstable, with the
machine's load recorded beside it. The models here advance a fake clock by scripted durations, so
each case is exact whatever else runs on the machine."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mlcore.compress import report as report_module
from mlcore.compress.report import (LATENCY_MAX_ROUNDS, STABLE_SPREAD, CompressionReport, ModelStats, honest_notes,
                                    measure_latency, relative_spread)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class Scripted(nn.Module):
    """A 'model' whose forward takes `duration(call, batch)` seconds of the fake clock."""

    def __init__(self, clock: Clock, duration: Callable[[int, torch.Tensor], float]) -> None:
        super().__init__()
        self.clock, self.duration, self.calls = clock, duration, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.duration(self.calls, x)
        self.calls += 1
        return x


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(report_module, "time", SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def _batches(single_lengths: tuple[int, ...] = (10,)) -> dict[int, list[dict[str, torch.Tensor]]]:
    return {1: [{"x": torch.zeros(1, n)} for n in single_lengths], 32: [{"x": torch.zeros(32, 10)}]}


def test_steady_timings_stop_after_the_minimum_rounds_and_record_the_load(clock: Clock) -> None:
    models = {"baseline": Scripted(clock, lambda c, x: 0.002), "optimized": Scripted(clock, lambda c, x: 0.001)}
    timing: dict = {}
    latency = measure_latency(models, _batches(), runs=20, warmup=5, timing=timing)
    assert latency["baseline"][32] == pytest.approx(2 / 32) and latency["optimized"][1] == pytest.approx(1.0)
    assert timing["stable"] is True and timing["rounds"] == 20 and timing["max_spread"] == 0
    assert timing["threshold"] == STABLE_SPREAD and timing["spread"]["baseline"] == {"1": 0, "32": 0}
    assert len(timing["load_before"]) == 3 and len(timing["load_after"]) == 3
    assert timing["cpus"] == os.cpu_count() and timing["cores"] == len(os.sched_getaffinity(0))


def test_a_load_spike_is_timed_past_until_the_window_is_clean(clock: Clock) -> None:
    """The first timed rounds run 10x slow (another process took the core): timing goes on until the
    last 20 rounds are steady, and the median is the steady figure, not the spike's."""
    warmup, spike = 5, 12

    def slow_then_steady(call: int, x: torch.Tensor) -> float:
        round_ = call // 2  # two batch sizes per round
        return 0.010 if warmup <= round_ < warmup + spike else 0.001

    models = {"baseline": Scripted(clock, slow_then_steady), "optimized": Scripted(clock, slow_then_steady)}
    timing: dict = {}
    latency = measure_latency(models, _batches(), runs=20, warmup=warmup, timing=timing)
    assert timing["stable"] is True and 20 < timing["rounds"] <= spike + 20
    assert latency["baseline"][1] == pytest.approx(1.0)  # ms per record, the steady time


def test_noise_that_never_settles_stops_at_the_cap_and_says_so(clock: Clock) -> None:
    noisy = itertools.cycle([0.001, 0.004, 0.0015, 0.003, 0.0008])
    models = {"baseline": Scripted(clock, lambda c, x: next(noisy)), "optimized": Scripted(clock, lambda c, x: 0.001)}
    timing: dict = {}
    measure_latency(models, _batches(), runs=20, warmup=5, max_rounds=60, timing=timing)
    assert timing["stable"] is False and timing["rounds"] == 60
    assert timing["max_spread"] > STABLE_SPREAD and timing["spread"]["baseline"]["1"] > STABLE_SPREAD
    assert timing["spread"]["optimized"]["32"] == 0
    assert LATENCY_MAX_ROUNDS >= 60  # the default cap is no tighter than this test's


def test_records_of_different_lengths_are_not_taken_for_noise(clock: Clock) -> None:
    """Batch-1 timing cycles over 8 records; a long one takes 8x a short one, every time."""
    models = {"baseline": Scripted(clock, lambda c, x: 1e-4 * x.shape[1]),
              "optimized": Scripted(clock, lambda c, x: 5e-5 * x.shape[1])}
    timing: dict = {}
    measure_latency(models, _batches((10, 80, 10, 20, 40, 10, 15, 30)), runs=20, warmup=5, timing=timing)
    assert timing["stable"] is True and timing["rounds"] == 20
    assert relative_spread([1.0, 8.0, 1.0, 2.0, 4.0, 1.0]) > STABLE_SPREAD  # without the inputs it would not be


def test_an_unstable_report_says_so_in_words() -> None:
    stats = ModelStats(metrics={"roc_auc": 0.9}, params=10, bytes=100, encoder_weight_bytes=50, latency_ms_b1=1.0,
                       latency_ms_b32=0.5, throughput_b32=2000.0, sparsity=0.0, dtype="float32")
    report = CompressionReport(
        profile="int8", primary_metric="roc_auc", greater_is_better=True, baseline=stats, optimized=stats,
        speedup_b1=1.0, speedup_b32=1.5, size_ratio=1.0, encoder_weight_ratio=1.0, metric_delta=0.0,
        params_ratio=1.0, threads=1,
        timing={"stable": False, "max_spread": 0.37, "threshold": 0.1, "rounds": 100, "load_after": [6.5, 5, 4],
                "cpus": 2})
    assert report.to_dict()["timing"]["stable"] is False
    notes = honest_notes(report)
    assert any("not stable" in n and "37%" in n and "100 timed rounds" in n and "6.5 on 2 CPUs" in n
               for n in notes), notes


def test_a_slower_profile_is_called_slower_in_words_never_a_fraction_faster() -> None:
    from mlcore.compress.report import CompressionReport, ModelStats, honest_notes

    side = ModelStats(metrics={"roc_auc": 0.9}, params=10, bytes=100, encoder_weight_bytes=50, latency_ms_b1=1.0,
                      latency_ms_b32=10.0, throughput_b32=3200.0, sparsity=0.0, dtype="float32")
    report = CompressionReport(profile="mixed-precision", primary_metric="roc_auc", greater_is_better=True,
                               baseline=side, optimized=side, speedup_b1=0.73, speedup_b32=1.5, size_ratio=1.0,
                               encoder_weight_ratio=1.0, metric_delta=0.0, params_ratio=1.0, threads=1)
    notes = honest_notes(report)
    assert any(n.startswith("1.37x slower than the baseline at batch 1") for n in notes), notes
    assert not any("0.73x" in n for n in notes)
