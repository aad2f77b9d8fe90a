"""The fast paths of the DiT (issue 8): tables once per forward, fused attention without a mask,
RoPE kernels, no host syncs in the training step, compiled blocks. No timings here: the
benchmarks in ``bench/`` measure speed; these tests pin down what makes it fast."""

import copy

import pytest
import torch
import torch.nn.functional as F

import lit_rpe.models.dit as dit_module
import lit_rpe.posenc.encoding as encoding_module
from lit_rpe.models import DiT
from lit_rpe.posenc import (
    InferenceRule,
    apply_rope,
    base_frequencies,
    encode_positions,
    grid_positions,
    rope_tables,
    rpe2d_positions,
    rule_frequencies,
)
from lit_rpe.training.config import NetConfig
from lit_rpe.training.module import DiffusionModule


def tiny(encoder="rope", positions="grid", depth_name="DiT-N/2", **kw):
    torch.manual_seed(0)
    model = DiT.from_name(
        depth_name,
        input_size=16,
        in_channels=3,
        num_classes=5,
        encoder=encoder,
        train_positions=positions,
        **kw,
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # adaLN-Zero starts at zero: give every weight a value
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def inputs(h=16, w=16, n=2):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, h, w, generator=g), torch.rand(n, generator=g), torch.tensor([1, 3])


def counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("encoder", ["sincos", "rope"])
@pytest.mark.parametrize("rule", [None, "extrapolate", "dype_ntk"])
def test_tables_are_built_once_per_forward_for_all_blocks(monkeypatch, encoder, rule):
    model = tiny(encoder).eval()
    assert len(model.blocks) == 2
    encodes = counting(monkeypatch, dit_module, "encode_positions")
    tables = counting(
        monkeypatch, encoding_module, "rope_tables" if encoder == "rope" else "sincos_embedding"
    )
    x, t, y = inputs(32, 32)
    with torch.no_grad():
        model(x, t, y, rule=InferenceRule(rule) if rule else None, rule_t=0.3)
    assert len(encodes) == 1 and len(tables) == 1


def test_frequencies_are_cached_per_grid_rule_and_t():
    rule_frequencies.cache_clear()
    kw = dict(dim=16, theta=1e4, train_grid=(8, 8), test_grid=(16, 16))
    first = rule_frequencies(InferenceRule("dype_yarn"), t=0.5, **kw)
    assert rule_frequencies(InferenceRule("dype_yarn"), t=0.5, **kw) is first
    assert rule_frequencies(InferenceRule("dype_yarn"), t=0.25, **kw) is not first
    info = rule_frequencies.cache_info()
    assert (info.hits, info.misses) == (1, 2)


@pytest.mark.parametrize("encoder", ["sincos", "rope"])
def test_batch_shared_positions_are_encoded_once_with_the_same_values(encoder):
    freqs = rule_frequencies(None, dim=16, theta=1e4, train_grid=(4, 4), test_grid=(4, 6))
    shared = encode_positions(encoder, grid_positions(3, 4), grid_positions(3, 6), freqs)
    each = encode_positions(
        encoder, grid_positions(3, 4).contiguous(), grid_positions(3, 6).contiguous(), freqs
    )
    for a, b in zip(
        (shared.additive,) if encoder == "sincos" else shared.rope,
        (each.additive,) if encoder == "sincos" else each.rope,
        strict=True,
    ):
        assert a.shape == b.shape and a.shape[0] == 3
        assert a.stride(0) == 0 and b.stride(0) != 0  # one table, read by every sample
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _rope_reference(x, pos_h, pos_w, f):
    """The rotation written pair by pair with complex numbers (float64)."""
    d = x.shape[-1] // 2
    out = torch.empty_like(x)
    rows = pos_h[:, :, None].expand(-1, -1, pos_w.shape[1]).reshape(x.shape[0], 1, -1, 1)
    cols = pos_w[:, None, :].expand(-1, pos_h.shape[1], -1).reshape(x.shape[0], 1, -1, 1)
    for axis, pos in ((0, rows), (1, cols)):
        half = x[..., axis * d : (axis + 1) * d]
        z = torch.complex(half[..., : d // 2], half[..., d // 2 :]) * torch.exp(1j * pos * f)
        out[..., axis * d : axis * d + d // 2] = z.real
        out[..., axis * d + d // 2 : (axis + 1) * d] = z.imag
    return out


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_rope_kernel_matches_the_complex_rotation_in_both_layouts(layout):
    g = torch.Generator().manual_seed(0)
    pos_h, pos_w = rpe2d_positions(2, 3, 9, generator=g), rpe2d_positions(2, 4, 9, generator=g)
    f = base_frequencies(8)
    qkv = torch.randn(2, 12, 3, 3, 16, generator=g, dtype=torch.float64)
    x = qkv.permute(2, 0, 3, 1, 4)[0]  # (B, heads, N, head_dim) as the attention sees q
    if layout == "contiguous":
        x = x.contiguous()
    assert x.is_contiguous() == (layout == "contiguous")
    cos, sin = rope_tables(pos_h, pos_w, f, f, dtype=torch.float64)
    ref = _rope_reference(x, pos_h.double(), pos_w.double(), f)
    torch.testing.assert_close(apply_rope(x, cos, sin), ref)
    torch.testing.assert_close(apply_rope(x.float(), cos.float(), sin.float()), ref.float())
    bf16 = apply_rope(x.bfloat16(), cos.bfloat16(), sin.bfloat16()).double()
    assert (bf16 - ref).abs().max() < 0.05

    # the hand-written backward is the transpose of the forward, in both layouts
    leaf = qkv.clone().requires_grad_()

    def rotate(leaf):
        q = leaf.permute(2, 0, 3, 1, 4)[0]
        return apply_rope(q.contiguous() if layout == "contiguous" else q, cos, sin)

    assert torch.autograd.gradcheck(rotate, (leaf,))


def test_rope_saves_no_activation_for_backward():
    cos, sin = rope_tables(grid_positions(1, 2), grid_positions(1, 2), *[base_frequencies(4)] * 2)
    x = torch.randn(1, 2, 4, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        apply_rope(x, cos, sin)
    assert all(s.data_ptr() in (cos.data_ptr(), sin.data_ptr()) for s in saved)


@pytest.mark.parametrize("encoder", ["sincos", "rope"])
@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_attention_gets_fused_kernel_inputs_and_no_mask(monkeypatch, encoder, bf16, train):
    if not hasattr(torch, "_fused_sdp_choice"):
        pytest.skip("this torch cannot report its SDPA kernel choice")
    from torch.nn.attention import SDPBackend

    chosen = []
    original = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        assert attn_mask is None and dropout_p == 0.0 and not is_causal and not kw
        backend = torch._fused_sdp_choice(q, k, v, scale=scale)
        chosen.append(SDPBackend(backend))
        return original(q, k, v, scale=scale)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    model = tiny(encoder, "rpe2d" if train else "grid").train(train)
    x, t, y = inputs(32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with torch.set_grad_enabled(train):
            rule = None if train else InferenceRule("yarn", attention_scale="proportional")
            model(x, t, y, rule=rule)
    expected = SDPBackend.FLASH_ATTENTION  # the CPU fused kernel: memory linear in tokens
    assert chosen == [expected] * len(model.blocks)


def test_training_step_reads_no_tensor_value_on_the_host(monkeypatch):
    """No .item(), bool(tensor), float(tensor) or .tolist() in the step: on a GPU each would
    stall the host until the device caught up. The NaN check reads the loss once, before the
    optimizer step (after the backward was queued), and only on the steps it is due."""
    net = NetConfig(
        name="DiT-N/2", encoder="rope", train_positions="rpe2d", micro_conditioning=True
    )
    module = DiffusionModule(net=net, resolution=16, num_classes=4, nan_check_every_n_steps=0)
    checked = DiffusionModule(net=net, resolution=16, num_classes=4, nan_check_every_n_steps=1)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    batch = {"image": images, "label": torch.tensor([0, 1, 2, 3]), "box": torch.rand(4, 4)}

    class HostRead(Exception):
        pass

    def forbidden(*args, **kwargs):
        raise HostRead

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for m in (module, checked):
        with pytest.warns(UserWarning, match="self.log"):  # no Trainer: logging is skipped
            loss = m.training_step(batch, 0)
        loss.backward()
    module.on_before_optimizer_step(None)  # check off: no read
    with pytest.raises(HostRead):
        checked.on_before_optimizer_step(None)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["sincos", "rope"])
def test_compiled_blocks_match_eager(encoder):
    eager = tiny(encoder)
    compiled = copy.deepcopy(eager)
    for block in compiled.blocks:
        block.compile()
    x, t, y = inputs()
    pos = grid_positions(2, 8)
    results = []
    for model in (eager, compiled):
        out = model(x, t, y, pos_h=pos, pos_w=pos)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[1][1], results[0][1], strict=True):  # fused kernels round apart
        assert (a - b).norm() <= 1e-3 * b.norm() + 1e-6


def test_modulate_and_gated_residual_are_dits_formulas():
    g = torch.Generator().manual_seed(0)
    x, shift, scale = (
        torch.randn(s, generator=g, dtype=torch.float64) for s in ((2, 5, 3), (2, 3), (2, 3))
    )
    expected = x * (1 + scale[:, None]) + shift[:, None]
    torch.testing.assert_close(dit_module.modulate(x, shift, scale), expected)
    torch.testing.assert_close(dit_module.modulate(x, shift[:, None], scale[:, None]), expected)


def test_compiled_gelu_form_is_the_tanh_approximation(monkeypatch):
    x = torch.linspace(-12, 12, 4001, dtype=torch.float64)
    expected = 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))
    torch.testing.assert_close(dit_module.gelu_tanh(x), expected)  # eager: torch's kernel
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    torch.testing.assert_close(dit_module.gelu_tanh(x), expected, rtol=1e-12, atol=1e-14)


def test_optimizer_is_fused_adamw_on_cpu():
    module = DiffusionModule(net=NetConfig(name="DiT-N/2"), resolution=16, num_classes=5)
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True


@pytest.mark.parametrize("bf16", [False, True])
def test_the_residual_stream_has_one_dtype_for_every_encoding(bf16):
    """Under bf16 autocast the blocks take and return fp32 tokens (the input's dtype) whether the
    position is an additive table or a rotation: the strategies train with the same numerics."""
    seen = {}
    for encoder, positions in (("sincos", "grid"), ("rope", "grid"), ("rope", "rpe2d")):
        model = tiny(encoder, positions).train()
        dtypes = []
        for block in model.blocks:
            block.register_forward_hook(
                lambda mod, args, out, seen=dtypes: seen.extend([args[0].dtype, out.dtype])
            )
        x, t, y = inputs()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x, t, y)
        seen[f"{encoder}/{positions}"] = set(dtypes)
    assert seen == dict.fromkeys(seen, {torch.float32})
