"""The stem shared by the string modalities (DNA, protein, SMILES): token embeddings, learned
absolute positions and an optional local convolution.

Why the convolution: short local patterns (a binding motif, a functional group spelled over several
SMILES tokens) are what most biological and chemical sequence tasks hinge on, and a residual 1-D
convolution over the embeddings hands each token its neighbourhood before the first attention layer,
so a small encoder learns such patterns in a few epochs instead of having to assemble them from
pairwise attention. Genomics Transformers commonly put a convolutional stem in front for this reason.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcore.modalities.base import LearnedPositions


class SequenceStem(nn.Module):
    """tokens (B, T) int -> (x (B, T, D), pad_mask (B, T), None).

    `composition`, when given, is a (V, C) matrix: a token's embedding is then the composition-weighted
    mean of C learned component embeddings (DNA: an IUPAC ambiguity code is the mean of the bases it
    may stand for) instead of a free row. `extra_vocab` > 0 adds a second embedded id per position
    (DNA k-mers) summed with the token embedding.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int,
        *,
        conv_kernel: int = 0,
        composition: Tensor | None = None,
        extra_vocab: int = 0,
    ) -> None:
        super().__init__()
        if composition is not None:
            self.register_buffer("composition", composition.float())  # (V, C)
            self.component = nn.Parameter(torch.randn(composition.shape[1], d_model) * 0.02)  # (C, D)
            self.embed = None
        else:
            self.composition = None
            self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
            nn.init.normal_(self.embed.weight, std=0.02)
            with torch.no_grad():
                self.embed.weight[0].zero_()
        self.extra = nn.Embedding(extra_vocab, d_model, padding_idx=0) if extra_vocab else None
        if self.extra is not None:
            nn.init.normal_(self.extra.weight, std=0.02)
        self.positions = LearnedPositions(max_len, d_model)
        self.conv = nn.Conv1d(d_model, d_model, conv_kernel, padding=conv_kernel // 2) if conv_kernel else None
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tokens: Tensor, extra: Tensor | None = None, **_: Tensor) -> tuple[Tensor, Tensor, None]:
        pad_mask = tokens != 0  # (B, T), id 0 is padding
        if self.composition is not None:
            x = self.composition[tokens] @ self.component  # (B, T, C) @ (C, D) -> (B, T, D)
        else:
            x = self.embed(tokens)  # (B, T, D)
        if self.extra is not None and extra is not None:
            x = x + self.extra(extra)
        x = x + self.positions(tokens.shape[1])  # (B, T, D)
        if self.conv is not None:
            # Zero the padding first so a record's features never depend on how far it was padded.
            h = (x * pad_mask.unsqueeze(-1)).transpose(1, 2)  # (B, D, T)
            x = x + F.gelu(self.conv(h)).transpose(1, 2)  # (B, T, D)
        # LayerNorm puts every modality's tokens on the same scale before the shared encoder.
        x = self.norm(x) * pad_mask.unsqueeze(-1)
        return x, pad_mask, None
