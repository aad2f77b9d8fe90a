"""Named model sizes: the CPU study's DiT-XS/4 (issue 18)."""

import pytest

from lit_rpe.models import DiT, parse_model_name


def test_xs_is_the_cpu_study_model():
    assert parse_model_name("DiT-XS/4") == dict(depth=4, hidden_size=128, num_heads=2, patch_size=4)
    assert (
        parse_model_name("DiT-XS/4")["patch_size"] == 4
        and parse_model_name("DiT-XS/2")["depth"] == 4
    )
    # The study's model: pixel space, 32 px, 10 shapes classes -> an 8 x 8 token grid and the
    # parameter count docs/RESULTS.md quotes. Both encoders fit its 64-channel heads.
    for encoder in ("sincos", "rope"):
        model = DiT.from_name(
            "DiT-XS/4", input_size=32, in_channels=3, num_classes=10, encoder=encoder
        )
        assert model.train_grid == (8, 8)
        assert len(model.blocks) == 4 and model.blocks[0].attn.head_dim == 64
        assert sum(p.numel() for p in model.parameters()) == 1_283_632


def test_unknown_size_names_xs_among_the_valid_ones():
    with pytest.raises(ValueError, match="XS"):
        parse_model_name("DiT-XXS/4")
