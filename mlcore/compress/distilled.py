"""`distilled`: a smaller student trained on the teacher's soft targets (Hinton et al., 2015).

The student is the job's model one preset down (base -> small -> tiny; a tiny teacher gets a tiny
student with half the layers and half the FFN width), built with the same featurizer and seed. Its
loss is `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task loss`, with both logit sets
softened by the temperature T (the T^2 keeps the soft-target gradients on the scale of the hard
ones). Regression students match the teacher's standardized outputs with a squared error instead;
per-token students use the per-token KL over labelled tokens. The teacher runs in eval mode without
gradients inside the student's training step, so augmented records get matching teacher outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mlcore.catalog import PRESETS
from mlcore.compress.base import CompressContext, Compressed, profile_register
from mlcore.kinds import kind_get
from mlcore.model import HeadOutput

PRESET_ORDER = list(PRESETS)  # smallest first: tiny, small, base


@dataclass
class DistilledConfig:
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft-target term; 1 - alpha goes to the task loss
    student_preset: str | None = None  # default: one preset below the teacher's
    epochs: int | None = None  # default: the job's epochs


def student_shape(teacher_preset: str) -> tuple[str, dict[str, Any]]:
    """(preset, encoder overrides) of the student one size below `teacher_preset`."""
    i = PRESET_ORDER.index(teacher_preset)
    if i > 0:
        return PRESET_ORDER[i - 1], {}
    shape = PRESETS[teacher_preset]
    return teacher_preset, {"n_layers": max(1, shape["n_layers"] // 2), "d_ff": max(1, shape["d_ff"] // 2)}


class DistillationModel(nn.Module):
    """Wraps student and (frozen) teacher for the trainer: training loss = distillation loss.

    In eval mode it is the student alone, so validation and early stopping see the student's metric.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, kind: str, temperature: float, alpha: float) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)  # the trainer's optimizer takes only trainable parameters
        self.kind, self.temperature, self.alpha = kind, temperature, alpha

    def train(self, mode: bool = True) -> DistillationModel:
        super().train(mode)
        self.teacher.eval()  # the teacher's dropout stays off: its soft targets must be its best guess
        return self

    def forward(self, labels: Tensor | None = None, **batch: Tensor) -> HeadOutput:
        out = self.student(labels=labels, **batch)
        if not self.training or labels is None:
            return out
        with torch.no_grad():
            t_logits = self.teacher(**batch).logits.float()
        s_logits = out.logits.float()
        soft = kind_get(self.kind).distill_loss(s_logits, t_logits, labels, self.temperature)
        return HeadOutput(loss=self.alpha * soft + (1 - self.alpha) * out.loss, logits=out.logits)


@profile_register("distilled", DistilledConfig)
def apply(model: nn.Module, config: DistilledConfig, ctx: CompressContext) -> Compressed:
    """Train a fresh student on the teacher `model`; returns the student."""
    if ctx.build_model is None:
        raise ValueError("the distilled profile needs a model builder in its context")
    preset, overrides = (config.student_preset, {}) if config.student_preset else student_shape(ctx.preset)
    student = ctx.build_model(preset, **overrides)
    wrapper = DistillationModel(student, model, ctx.kind, config.temperature, config.alpha)
    epochs = config.epochs or ctx.train_config.epochs
    result = ctx.fine_tune(wrapper, epochs=epochs, patience=ctx.train_config.patience)
    student = result.model.student.cpu().eval()
    shape = f"preset {preset}" + (f" with {overrides}" if overrides else "")
    notes = [f"student ({shape}) trained {epochs} epochs on the teacher's soft targets "
             f"(T={config.temperature:g}, alpha={config.alpha:g})."]
    return Compressed(model=student, storage="dense", dtype="float32", notes=notes,
                      info={"student_preset": preset, "student_overrides": overrides, "best_epoch": result.best_epoch})
