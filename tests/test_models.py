from __future__ import annotations

import math

import pytest
import torch

from linr.models import MODELS, ModelConfig, Siren, build_model, coordinate_grid


def test_paper_siren_structure_and_size():
    model = build_model(ModelConfig(), out_channels=3)
    assert isinstance(model, Siren)
    assert sum(p.numel() for p in model.parameters()) == 396_291  # 1 + 6 sine layers of 256
    assert len(model.body) == 7
    assert all(layer.omega_0 == 30.0 for layer in model.body)


def test_siren_init_bounds():
    torch.manual_seed(0)
    model = Siren(width=256, depth=7, omega_0=30.0)
    first = model.body[0].linear.weight
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45  # U(-1/fan_in, 1/fan_in), fan_in 2
    bound = math.sqrt(6 / 256) / 30
    for layer in list(model.body)[1:]:
        w = layer.linear.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    assert model.head.weight.abs().max() <= bound
    # biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert model.body[1].linear.bias.abs().max() <= 1 / 16
    assert model.body[0].linear.bias.abs().max() > 1 / 2  # fan_in 2: bound 0.707


def test_grid_convention():
    g = coordinate_grid(512, 768)  # a 768x512 (WxH) Kodak image
    assert g.shape == (512 * 768, 2)
    rows, cols = g[:, 0], g[:, 1]
    assert cols.min() == -1 and cols.max() == 1
    assert abs(rows.max().item() - 0.667) < 0.002 and abs(rows.min().item() + 0.667) < 0.002
    # equal spacing on both axes, row-major order (col varies fastest)
    assert torch.allclose(g[1, 1] - g[0, 1], torch.tensor(2 / 767), atol=1e-6)
    assert torch.allclose(g[768, 0] - g[0, 0], torch.tensor(2 / 767), atol=1e-6)
    assert g[1, 0] == g[0, 0]
    sq = coordinate_grid(4, 4)
    assert torch.allclose(sq[0], torch.tensor([-1.0, -1.0])) and torch.allclose(sq[-1], torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("name", MODELS)
def test_every_model_maps_coordinates_to_values(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, width=32, depth=3).for_image(5, 7), out_channels=1)
    out = model(coordinate_grid(5, 7))
    assert out.shape == (35, 1) and torch.isfinite(out).all()
    out.sum().backward()


def test_relu_pe_octaves_come_from_the_image_side_as_in_the_siren_code_base():
    """Independent reference: the SIREN code base's Nyquist rule, floor(log(side / 4, 2)) (its
    ``get_num_frequencies_nyquist``); the shorter side counts; an explicit count is kept; an
    unresolved config is refused by build_model; a fit records the count it used."""
    import math

    import numpy as np

    import linr
    from linr.models import nyquist_octaves

    for side in (16, 63, 64, 128, 228, 255, 256, 280, 288, 344, 512, 768):
        assert nyquist_octaves(side) == int(math.floor(math.log(1 / (2 * (2 * 1 / side)), 2)))
    assert ModelConfig(name="relu_pe").for_image(228, 344).pe_frequencies == 5  # set5 woman: the shorter side
    assert ModelConfig(name="relu_pe", pe_frequencies=10).for_image(228, 344).pe_frequencies == 10
    assert ModelConfig(name="siren").for_image(512, 512) == ModelConfig(name="siren")
    with pytest.raises(ValueError, match="for_image"):
        build_model(ModelConfig(name="relu_pe"), out_channels=3)
    encoded = build_model(ModelConfig(name="relu_pe", width=8, depth=1).for_image(64, 64), out_channels=1)
    assert encoded.body[0].out_features == 2 * (1 + 2 * 4)  # x, y and sin / cos of 4 octaves each
    result = linr.restore([linr.noisy(np.full((32, 48, 1), 0.5, np.float32))], model=ModelConfig(
        name="relu_pe", width=8, depth=1), steps=2, stop="fixed", device="cpu", progress=False, refine="none")
    assert result.settings["model"]["pe_frequencies"] == 3  # floor(log2(32 / 4))
    tiled = linr.restore([linr.noisy(np.full((48, 48, 1), 0.5, np.float32))], model=ModelConfig(
        name="relu_pe", width=8, depth=1), steps=1, stop="fixed", device="cpu", progress=False, refine="none",
        tile="24:8")
    side = min(tiled.settings["tiling"]["size"])
    assert tiled.settings["model"]["pe_frequencies"] == nyquist_octaves(side)  # as each tile's fit resolved it
    # every other model holds the count it always did, so settings recorded before read the same
    # (batch manifests, tile stores, bench keys); the command line's --model relu_pe sets its own
    import argparse
    import dataclasses

    from linr.cli_common import model_config

    assert dataclasses.asdict(ModelConfig())["pe_frequencies"] == 10
    args = argparse.Namespace(model="relu_pe", width=None, depth=None, omega0=None)
    assert model_config(args, None).pe_frequencies is None


def test_wire_counts_real_features_and_returns_real_values():
    from linr.models import Wire

    model = Wire(width=32, depth=3, out_channels=2)
    assert model.layers[0].weight.dtype == torch.float32 and model.layers[1].weight.dtype == torch.cfloat
    assert model.layers[0].out_features == int(32 / 2 ** 0.5)  # complex features: width / sqrt(2)
    out = model(coordinate_grid(3, 3))
    assert out.dtype == torch.float32 and out.shape == (9, 2)


def test_finer_activation_is_the_variable_periodic_sine():
    from linr.models import VariableSine

    z = torch.linspace(-2, 2, 41, dtype=torch.float64)
    omega = 30.0
    g = VariableSine(omega)
    assert torch.allclose(g(omega * z), torch.sin(omega * (z.abs() + 1) * z))
    slope = torch.empty_like(z)
    value = g.value_and_slope_(omega * z, slope)
    assert torch.allclose(value, torch.sin(omega * (z.abs() + 1) * z))
    assert torch.allclose(slope, (z.abs() + 1) * torch.cos(omega * (z.abs() + 1) * z))


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        build_model(ModelConfig(name="nope"), out_channels=3)
