"""The FID Inception v3: layer layout, TF1 resize, weight layouts, outputs, missing weights.

No real weights exist offline, so the tests use random weights with BatchNorm statistics
re-estimated on real photographs (``calibrated_inception_state_dict``), written in each
supported layout and loaded back through the public constructor.
"""

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from eval_fixtures import calibrated_inception_state_dict, photo_crops
from torchmetrics.image.fid import FrechetInceptionDistance

from lit_rpe.eval.metrics import (
    PYTORCH_FID_FILENAME,
    TORCH_FIDELITY_FILENAME,
    TORCH_FIDELITY_URL,
    WEIGHTS_ENV_VAR,
    FIDInceptionV3,
    InceptionFeature,
    InceptionV3Layers,
    preprocess_uint8,
    resize_bilinear_tf1,
)
from lit_rpe.eval.metrics.inception import tf_avg_pool_3x3


@pytest.fixture(scope="module")
def calibrated_state_dict():
    return calibrated_inception_state_dict()


@pytest.fixture(scope="module")
def weight_files(calibrated_state_dict, tmp_path_factory):
    """The calibrated weights saved in torch-fidelity's, pytorch-fid's and its wrapper's layout."""
    root = tmp_path_factory.mktemp("weights")
    counters = [k for k in calibrated_state_dict if k.endswith("num_batches_tracked")]
    assert counters  # the torch-fidelity file must differ from the torchvision one by these
    # torch-fidelity's converter writes a plain dict without BatchNorm counters.
    fidelity = {k: v for k, v in calibrated_state_dict.items() if k not in counters}
    torch.save(fidelity, root / TORCH_FIDELITY_FILENAME)
    # pytorch-fid's release file is a torchvision Inception3 state dict: same names, counters kept.
    torch.save(OrderedDict(calibrated_state_dict), root / PYTORCH_FID_FILENAME)
    # pytorch-fid's InceptionV3 wrapper (src/pytorch_fid/inception.py) keeps the layers in
    # blocks = [[1a, 2a, 2b, maxpool], [3b, 4a, maxpool], [5b .. 6e], [7a, 7b, 7c, avgpool]]
    # and has no classifier. Written out here independently of the library's key table.
    blocks = [
        ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"],
        ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
        ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d"]
        + ["Mixed_6e"],
        ["Mixed_7a", "Mixed_7b", "Mixed_7c"],
    ]
    wrapper = {}
    for key, value in calibrated_state_dict.items():
        layer, rest = key.split(".", 1)
        for i, names in enumerate(blocks):
            if layer in names:
                wrapper[f"blocks.{i}.{names.index(layer)}.{rest}"] = value
    assert len(wrapper) == len(calibrated_state_dict) - 2  # all but fc.weight and fc.bias
    torch.save(wrapper, root / "pytorch_fid_wrapper.pth")
    return {
        "torch-fidelity": root / TORCH_FIDELITY_FILENAME,
        "pytorch-fid": root / PYTORCH_FID_FILENAME,
        "pytorch-fid-wrapper": root / "pytorch_fid_wrapper.pth",
    }


@pytest.fixture(scope="module")
def inception(weight_files):
    return FIDInceptionV3(weight_files["torch-fidelity"])


def test_layer_layout_follows_the_tf_graph():
    layers = InceptionV3Layers()
    convs = [m for m in layers.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in layers.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # torch-fidelity's TF->PyTorch key map has 94 conv2d_params entries, one per conv+BN.
    assert len(convs) == len(norms) == 94
    assert all(c.bias is None for c in convs)
    assert all(n.eps == 0.001 for n in norms)
    shapes = {k: tuple(v.shape) for k, v in layers.state_dict().items()}
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
    assert shapes["Mixed_6d.branch1x1.conv.weight"] == (192, 768, 1, 1)
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert shapes["Mixed_7c.branch3x3dbl_1.conv.weight"] == (448, 2048, 1, 1)
    assert shapes["fc.weight"] == (1008, 2048)
    assert (layers.Mixed_7b.pool, layers.Mixed_7c.pool) == ("avg", "max")


def test_tf_average_pool_ignores_padding():
    # With zeros counted, a corner of a constant map would average to 4/9 of the value.
    pooled = tf_avg_pool_3x3(torch.full((1, 1, 4, 4), 2.0))
    assert torch.equal(pooled, torch.full((1, 1, 4, 4), 2.0))


def test_resize_is_tf1_bilinear_without_half_pixel_centres():
    image = torch.tensor([[0.0, 10.0], [20.0, 30.0]]).view(1, 1, 2, 2)
    # Output i samples source i * 2/4 = 0, 0.5, 1, 1.5; the upper neighbour is clamped to 1.
    expected = torch.tensor(
        [
            [0.0, 5.0, 10.0, 10.0],
            [10.0, 15.0, 20.0, 20.0],
            [20.0, 25.0, 30.0, 30.0],
            [20.0, 25.0, 30.0, 30.0],
        ]
    ).view(1, 1, 4, 4)
    assert torch.equal(resize_bilinear_tf1(image, (4, 4)), expected)
    # PyTorch's align_corners=False uses half-pixel centres, a different convention.
    half_pixel = F.interpolate(image, size=(4, 4), mode="bilinear", align_corners=False)
    assert not torch.allclose(half_pixel, expected)
    # Downscaling 4 -> 2 samples sources 0 and 2 exactly: no averaging of neighbours.
    row = torch.tensor([1.0, 2.0, 4.0, 8.0]).view(1, 1, 1, 4)
    assert torch.equal(resize_bilinear_tf1(row, (1, 2)), torch.tensor([1.0, 4.0]).view(1, 1, 1, 2))
    same = torch.rand(2, 3, 5, 7)
    assert torch.equal(resize_bilinear_tf1(same, (5, 7)), same)


def test_preprocess_maps_uint8_to_unit_range():
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    x = preprocess_uint8(images.contiguous())
    assert x.shape == (1, 3, 299, 299)
    assert x[0, :, 0, 0].tolist() == [-1.0, 0.0, 127 / 128]
    with pytest.raises(ValueError, match="uint8"):
        preprocess_uint8(images.float())


def test_every_layout_loads_and_gives_identical_features(weight_files):
    images = photo_crops(3, 48, seed=2)
    outputs = {name: FIDInceptionV3(path)(images) for name, path in weight_files.items()}
    fidelity = outputs["torch-fidelity"]
    assert set(fidelity) == {"pool", "spatial", "logits_unbiased"}
    for key in fidelity:
        assert torch.equal(outputs["pytorch-fid"][key], fidelity[key])
    wrapper = outputs["pytorch-fid-wrapper"]
    assert set(wrapper) == {"pool", "spatial"}  # the wrapper layout carries no classifier
    for key in wrapper:
        assert torch.equal(wrapper[key], fidelity[key])


def test_in_memory_state_dict_loads_too(calibrated_state_dict, inception):
    images = photo_crops(2, 40, seed=3)
    from_dict = FIDInceptionV3(calibrated_state_dict)(images)
    for key, value in inception(images).items():
        assert torch.equal(from_dict[key], value)


@pytest.mark.parametrize("height, width", [(32, 32), (64, 48), (299, 299)])
def test_output_shapes_and_informative_features(inception, height, width):
    images = photo_crops(3, max(height, width), seed=4)[..., :height, :width].contiguous()
    out = inception(images)
    assert out["pool"].shape == (3, 2048)
    assert out["spatial"].shape == (3, 7 * 17 * 17)
    assert out["logits_unbiased"].shape == (3, 1008)
    for value in out.values():
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    # Calibrated BatchNorm keeps activations alive: features vary between images and
    # within an image, rather than collapsing to zeros or a constant.
    pool = out["pool"]
    assert (pool > 0).float().mean() > 0.2
    assert (pool[0] - pool[1]).abs().mean() > 0.01 * pool.abs().mean()
    assert out["spatial"].std() > 0


def test_spatial_features_are_mixed_6d_branch1x1_in_hwc_order(inception):
    images = photo_crops(2, 64, seed=5)
    captured = []
    hook = inception.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        spatial = inception(images)["spatial"]
    finally:
        hook.remove()
    (branch,) = captured
    assert branch.shape == (2, 192, 17, 17)
    expected = branch[:, :7].permute(0, 2, 3, 1).reshape(2, -1)
    assert torch.equal(spatial, expected)
    logits = inception(images)["logits_unbiased"]
    torch.testing.assert_close(logits, inception(images)["pool"] @ inception.fc.weight.T)


def test_deterministic_and_independent_of_batch(inception):
    images = photo_crops(4, 56, seed=6)
    first, second = inception(images), inception(images)
    for key in first:
        assert torch.equal(first[key], second[key])
    alone = inception(images[1:2])
    for key in first:
        torch.testing.assert_close(alone[key], first[key][1:2], rtol=1e-4, atol=1e-5)


def test_frozen_and_always_in_eval_mode(inception):
    inception.train()
    assert not inception.training
    assert not any(m.training for m in inception.modules())
    assert not any(p.requires_grad for p in inception.parameters())


def test_wrong_state_dict_is_rejected(calibrated_state_dict):
    with pytest.raises(ValueError, match="unexpected"):
        FIDInceptionV3({**calibrated_state_dict, "aux.weight": torch.zeros(1)})
    partial = {k: v for k, v in calibrated_state_dict.items() if not k.startswith("Mixed_7c")}
    with pytest.raises(ValueError, match="missing"):
        FIDInceptionV3(partial)


@pytest.fixture
def isolated_weight_dirs(tmp_path, monkeypatch):
    """Point every default location at empty temp folders and forbid downloads."""
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_download(*args, **kwargs):
        raise AssertionError("a test must never download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "weights"


def test_missing_weights_message_names_file_and_place(isolated_weight_dirs):
    with pytest.raises(FileNotFoundError) as info:
        FIDInceptionV3()
    message = str(info.value)
    assert TORCH_FIDELITY_FILENAME in message
    assert TORCH_FIDELITY_URL in message
    assert str(isolated_weight_dirs / TORCH_FIDELITY_FILENAME) in message
    assert WEIGHTS_ENV_VAR in message and "~/.cache/lit_rpe" in message
    with pytest.raises(FileNotFoundError, match=TORCH_FIDELITY_FILENAME):
        FIDInceptionV3(isolated_weight_dirs / "nowhere.pth")


def test_weights_found_in_default_folder(isolated_weight_dirs, weight_files, inception):
    isolated_weight_dirs.mkdir()
    (isolated_weight_dirs / PYTORCH_FID_FILENAME).write_bytes(
        weight_files["pytorch-fid"].read_bytes()
    )
    images = photo_crops(2, 32, seed=7)
    assert torch.equal(FIDInceptionV3()(images)["pool"], inception(images)["pool"])


def test_torchmetrics_fid_accumulates_the_adapter_features(inception):
    real, fake = photo_crops(4, 48, seed=8), photo_crops(3, 48, seed=9)
    feature = InceptionFeature(inception, "pool")
    assert feature.num_features == 2048
    metric = FrechetInceptionDistance(feature=feature)  # no torch-fidelity needed
    metric.update(real, real=True)
    metric.update(fake, real=False)
    # torchmetrics' FID sums what the adapter returns; its formula is checked against ours in
    # test_eval_statistics.py on cheaper, low-dimensional features.
    ours_real, ours_fake = inception(real)["pool"].double(), inception(fake)["pool"].double()
    torch.testing.assert_close(metric.real_features_sum, ours_real.sum(0))
    torch.testing.assert_close(metric.fake_features_cov_sum, ours_fake.T @ ours_fake)
    assert (metric.real_features_num_samples, metric.fake_features_num_samples) == (4, 3)
    spatial = InceptionFeature(inception, "spatial")
    assert spatial(real).shape == (4, spatial.num_features) == (4, 7 * 17 * 17)
    with pytest.raises(ValueError, match="unknown feature"):
        InceptionFeature(inception, "logits")
