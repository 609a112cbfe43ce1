"""Tests for mlcore/model.py: the encoder, its dropout, slimming, heads and attention rollout."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mlcore import model as model_module
from mlcore.model import (
    ClassificationHead,
    Encoder,
    EncoderConfig,
    RegressionHead,
    TokenClassificationHead,
    attention_rollout,
    dropout_add,
    encoder_base,
    encoder_small,
    encoder_tiny,
    fast_dropout,
)


def _tiny(**overrides) -> Encoder:
    torch.manual_seed(0)
    return Encoder(encoder_tiny(**overrides))


def _batch(B: int = 3, T: int = 7, D: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, D, generator=g)
    lengths = torch.tensor([T, max(T - 3, 1), 1][:B])
    pad_mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return x, pad_mask


def test_presets_have_the_expected_shapes() -> None:
    tiny, small, base = encoder_tiny(), encoder_small(), encoder_base()
    assert (tiny.d_model, tiny.n_layers, tiny.n_heads, tiny.d_ff) == (64, 2, 4, 128)
    assert small.d_model < base.d_model
    assert base.dim_per_head * base.n_heads == base.d_model
    assert encoder_tiny(dropout=0.0).dropout == 0.0


def test_output_shapes_and_cls_indexing() -> None:
    model = _tiny().eval()
    x, pad_mask = _batch()
    out = model(x, pad_mask)
    assert out.hidden.shape == (3, 8, 64)
    assert torch.equal(out.pooled, out.hidden[:, 0])
    assert torch.equal(out.tokens, out.hidden[:, 1:])
    assert out.attentions is None


@pytest.mark.parametrize("with_bias", [False, True])
def test_capture_and_fused_paths_agree(with_bias: bool) -> None:
    model = _tiny().eval()
    x, pad_mask = _batch()
    bias = torch.randn(3, 4, 7, 7) if with_bias else None
    fused = model(x, pad_mask, attn_bias=bias)
    captured = model(x, pad_mask, attn_bias=bias, output_attentions=True)
    torch.testing.assert_close(captured.hidden, fused.hidden, atol=1e-5, rtol=0)
    assert len(captured.attentions) == 2
    for weights in captured.attentions:
        assert weights.shape == (3, 4, 8, 8)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 8))
        # padded keys get no attention: sample 1 has 4 real tokens + [CLS] = 5 real positions
        assert weights[1, :, :, 5:].abs().max() == 0


def test_capture_and_fused_paths_agree_in_training_with_the_same_seed() -> None:
    # Attention dropout is a mask drawn the same way on both paths, so even training outputs coincide.
    model = _tiny().train()
    x, pad_mask = _batch()
    torch.manual_seed(5)
    fused = model(x, pad_mask)
    torch.manual_seed(5)
    captured = model(x, pad_mask, output_attentions=True)
    torch.testing.assert_close(captured.hidden, fused.hidden, atol=1e-5, rtol=0)
    # and attention dropout is active: some keys of the full-length sample get no attention
    assert (captured.attentions[0][0, :, 1:, :] == 0).any()


@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_training_path_has_the_explicit_paths_gradients(with_bias: bool) -> None:
    # Training in fp32 on CPU runs attention through a custom backward (_FlashAttentionCPU); the
    # explicit matmul + softmax path is the reference. Same seed, so the same dropout masks.
    model = _tiny().train()
    x, pad_mask = _batch()
    bias = torch.randn(3, 1, 7, 7) if with_bias else None
    grads = []
    for capture in (False, True):
        model.zero_grad()
        torch.manual_seed(3)
        out = model(x, pad_mask, attn_bias=bias, output_attentions=capture)
        (out.hidden**2).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, reference in grads[1].items():
        torch.testing.assert_close(grads[0][name], reference, atol=1e-4 * reference.abs().max().item(), rtol=0)


def test_padding_never_changes_real_tokens() -> None:
    model = _tiny().eval()
    g = torch.Generator().manual_seed(2)
    record = torch.randn(5, 64, generator=g)
    bias = torch.randn(4, 5, 5, generator=g)
    outs = []
    for padded_len in (5, 9, 23):
        x = torch.zeros(1, padded_len, 64)
        x[0, :5] = record
        x[0, 5:] = torch.randn(padded_len - 5, 64, generator=g) * 100  # garbage must not leak
        b = torch.zeros(1, 4, padded_len, padded_len)
        b[0, :, :5, :5] = bias
        pad_mask = torch.arange(padded_len)[None] < 5
        outs.append(model(x, pad_mask, attn_bias=b))
    for out in outs[1:]:
        torch.testing.assert_close(out.pooled, outs[0].pooled, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.tokens[:, :5], outs[0].tokens[:, :5], atol=1e-5, rtol=0)


def test_all_real_mask_equals_no_mask() -> None:
    model = _tiny().eval()
    x, _ = _batch()
    torch.testing.assert_close(model(x, torch.ones(3, 7, dtype=torch.bool)).hidden, model(x).hidden)


def test_encoder_and_head_export_with_torch_export_and_agree() -> None:
    # torch.export (the base of PT2E int8 quantization) needs no data-dependent branch and a pytree
    # HeadOutput; the exported graph always applies the padding mask, which changes no output.
    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = _tiny(), ClassificationHead(64, 3)

        def forward(self, x: torch.Tensor, pad_mask: torch.Tensor):
            return self.head(self.encoder(x, pad_mask).pooled)

    model = Classifier().eval()
    x, pad_mask = _batch()
    exported = torch.export.export(model, (x, pad_mask)).module()
    for mask in (pad_mask, torch.ones_like(pad_mask)):
        out = exported(x, mask)
        assert out.loss is None
        torch.testing.assert_close(out.logits, model(x, mask).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("training", [False, True])
def test_heavy_padding_and_short_records_give_no_nan(training: bool) -> None:
    model = _tiny().train(training)
    x = torch.randn(4, 6, 64, requires_grad=True)
    pad_mask = torch.zeros(4, 6, dtype=torch.bool)
    pad_mask[1, 0] = True  # one real token; rows 0, 2, 3 are fully padded
    bias = torch.randn(4, 1, 6, 6)
    for kwargs in ({}, {"attn_bias": bias}, {"output_attentions": True}):
        out = model(x, pad_mask, **kwargs)
        assert torch.isfinite(out.hidden).all()
        out.pooled.sum().backward()
        assert torch.isfinite(x.grad).all()
    one_token = model(torch.randn(2, 1, 64))
    assert torch.isfinite(one_token.hidden).all()


def test_bf16_autocast_runs_the_explicit_path_and_stays_close() -> None:
    model = _tiny().eval()
    x, pad_mask = _batch()
    reference = model(x, pad_mask).pooled
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, pad_mask, attn_bias=torch.randn(3, 4, 7, 7))
        out.pooled.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, pad_mask).pooled
    torch.testing.assert_close(low.float(), reference, atol=0.1, rtol=0.05)


def test_longer_than_max_len_is_rejected() -> None:
    model = _tiny(max_len=8)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.randn(1, 9, 64))


def test_keep_mask_rate_and_dropout_add_gradient() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = fast_dropout(x, 0.1, training=True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation
    y.sum().backward()
    # the gradient passes exactly where the value was kept, scaled by 1/(1-p)
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.9)
    # residual form: the residual's gradient is untouched, the branch is masked
    r = torch.zeros(1000, requires_grad=True)
    h = torch.ones(1000, requires_grad=True)
    dropout_add(r, h, 0.5, training=True).sum().backward()
    assert torch.equal(r.grad, torch.ones(1000))
    assert set(h.grad.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(dropout_add(r, h, 0.5, training=False), r + h)


def test_gradient_reaches_every_parameter() -> None:
    model = _tiny().train()
    head = ClassificationHead(64, 3)
    x, pad_mask = _batch()
    loss = head(model(x, pad_mask).pooled, torch.tensor([0, 1, 2])).loss
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_tiny_model_overfits_a_small_batch() -> None:
    torch.manual_seed(0)
    model, head = Encoder(encoder_tiny()), ClassificationHead(64, 2)
    x = torch.randn(16, 10, 64)
    labels = torch.randint(0, 2, (16,))
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    for _ in range(60):
        loss = head(model(x).pooled, labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval(), head.eval()
    with torch.no_grad():
        out = head(model(x).pooled, labels)
    assert out.loss.item() < 0.05
    assert (out.logits.argmax(-1) == labels).all()


def test_slimmed_model_matches_zeroed_heads_and_round_trips(tmp_path) -> None:
    model = _tiny().eval()
    x, pad_mask = _batch()
    # Reference: the full model with head 1 of layer 0 and 100 neurons of layer 1 switched off.
    reference = _tiny().eval()
    neurons = torch.arange(28, 128)
    with torch.no_grad():
        reference.blocks[0].attn.proj.weight[:, 16:32] = 0  # head 1 (head_dim 16) feeds these columns
        reference.blocks[1].mlp.proj.weight[:, :28] = 0
    expected = reference(x, pad_mask).hidden

    model.slim_(0, heads=[0, 2, 3])
    model.slim_(1, neurons=neurons)
    assert model.config.layer_n_heads == [3, 4] and model.config.layer_d_ff == [128, 100]
    assert model.blocks[0].attn.qkv.out_features == 3 * 3 * 16
    out = model(x, pad_mask, output_attentions=True)
    torch.testing.assert_close(out.hidden, expected, atol=1e-5, rtol=0)
    assert out.attentions[0].shape[1] == 3

    # save as config JSON + state dict, rebuild from the config alone, load strictly
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    config = EncoderConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert config == model.config
    reloaded = Encoder(config).eval()
    reloaded.load_state_dict(torch.load(tmp_path / "weights.pt"), strict=True)
    torch.testing.assert_close(reloaded(x, pad_mask).hidden, model(x, pad_mask).hidden, atol=0, rtol=0)


def test_config_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError):
        EncoderConfig(d_model=64, n_heads=5)
    with pytest.raises(ValueError):
        EncoderConfig(n_layers=2, layer_d_ff=[10])
    with pytest.raises(ValueError):
        EncoderConfig.from_dict({"d_model": 64, "colour": "red"})


def test_classification_head_uses_class_weights() -> None:
    torch.manual_seed(0)
    weights = torch.tensor([1.0, 4.0])
    head = ClassificationHead(8, 2, class_weights=weights).eval()
    features, labels = torch.randn(6, 8), torch.tensor([0, 1, 1, 0, 0, 0])
    out = head(features, labels)
    log_p = F.log_softmax(out.logits, -1)
    w = weights[labels]
    expected = -(w * log_p[torch.arange(6), labels]).sum() / w.sum()
    torch.testing.assert_close(out.loss, expected)
    assert head(features).loss is None
    assert "class_weights" in head.state_dict()


def test_regression_head_masks_nan_targets() -> None:
    torch.manual_seed(0)
    head = RegressionHead(8, 3).eval()
    features = torch.randn(4, 8, requires_grad=True)
    targets = torch.randn(4, 3)
    targets[0, 1] = targets[2, 0] = targets[3, 2] = float("nan")
    out = head(features, targets)
    present = ~torch.isnan(targets)
    expected = ((out.logits - targets)[present] ** 2).mean()
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert torch.isfinite(features.grad).all()
    all_missing = head(features, torch.full((4, 3), float("nan")))
    assert all_missing.loss.item() == 0.0
    single = RegressionHead(8, 1).eval()
    y = torch.randn(4)
    torch.testing.assert_close(single(features, y).loss, F.mse_loss(single(features).logits.squeeze(-1), y))


def test_token_head_ignores_labels() -> None:
    torch.manual_seed(0)
    head = TokenClassificationHead(8, 5).eval()
    features = torch.randn(2, 4, 8)
    labels = torch.tensor([[1, 2, -100, -100], [0, 4, 3, -100]])
    out = head(features, labels)
    assert out.logits.shape == (2, 4, 5)
    keep = labels != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))
    nothing = head(features, torch.full((2, 4), -100))
    assert nothing.loss.item() == 0.0


def test_attention_rollout_rows_sum_to_one_and_skip_padding() -> None:
    model = _tiny().eval()
    x, pad_mask = _batch()
    out = model(x, pad_mask, output_attentions=True)
    rollout = attention_rollout(out.attentions, pad_mask)
    assert rollout.shape == (3, 8)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(3))
    assert (rollout >= 0).all()
    assert rollout[2, 2:].abs().max() == 0  # sample 2 has one real token: only [CLS] and it
    # one uniform layer of attention: half identity + half uniform
    uniform = [torch.full((1, 2, 3, 3), 1 / 3)]
    torch.testing.assert_close(attention_rollout(uniform)[0], torch.tensor([0.5 + 1 / 6, 1 / 6, 1 / 6]))


@pytest.mark.parametrize("fused", [False, True])
def test_bf16_inference_takes_either_attention_path_and_both_agree(fused: bool, monkeypatch) -> None:  # noqa: ANN001
    """bf16 inference on the CPU takes the fused kernel only on AMX-BF16 CPUs (model._bf16_cpu_attention_fused);
    both paths give the same outputs within bf16 rounding, padding masked alike."""
    monkeypatch.setattr(model_module, "_bf16_cpu_attention_fused", lambda: fused)
    calls = []
    real_sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or real_sdpa(*a, **k))
    model = _tiny().eval()
    x, pad_mask = _batch()
    with torch.no_grad():
        reference = model(x, pad_mask).hidden
        calls.clear()
        low = model.to(torch.bfloat16)(x.to(torch.bfloat16), pad_mask).hidden
    assert len(calls) == (2 if fused else 0)  # one call per layer on the fused path
    assert not model_module.cpu_has_flag("no_such_cpu_flag")
    real = pad_mask.sum(1)  # compare real positions only ([CLS] + tokens)
    for i, n in enumerate(real.tolist()):
        torch.testing.assert_close(low[i, : n + 1].float(), reference[i, : n + 1], atol=0.15, rtol=0.05)
