"""Ensembles: K fits from seeds seed..seed+K-1 (one stack), their mean returned and their
per-pixel spread kept; each member is the single fit of its seed; bad combinations are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

import linr
from linr.cli import main
from linr.errors import InputError
from linr.images import write_image
from linr.simulate import add_gaussian_noise

from .conftest import crop, load, run_err

SMALL = linr.ModelConfig(width=16, depth=2)


@pytest.fixture(scope="module")
def noisy() -> np.ndarray:
    return add_gaussian_noise(crop(load("set5/head.png"), 16), 25, seed=0)


def test_the_mean_and_spread_of_members_that_are_the_single_fits_of_their_seeds(noisy):
    kw = dict(model=SMALL, steps=15, stop="fixed", device="cpu", progress=False, refine="none")
    result = linr.restore(linr.noisy(noisy), ensemble=3, seed=4, **kw)
    members = np.stack([linr.restore(linr.noisy(noisy), seed=s, **kw).image for s in (4, 5, 6)])
    assert result.settings["ensemble"]["seeds"] == [4, 5, 6]
    # stacked products round like single ones up to float32 noise
    assert np.abs(result.image - members.mean(axis=0)).max() < 1e-4
    assert np.abs(result.uncertainty - members.std(axis=0, ddof=1)).max() < 1e-4
    assert result.uncertainty.shape == noisy.shape and result.model is None
    with pytest.raises(InputError, match="mean of several networks"):
        result.render(scale=2)


def test_members_hold_out_different_pixels_under_the_automatic_stop(noisy):
    result = linr.restore(linr.noisy(noisy), ensemble=2, model=SMALL, steps=30, device="cpu", progress=False,
                          reference=crop(load("set5/head.png"), 16))
    described = result.settings["ensemble"]
    assert described["members"] == 2 and len(described["member_psnr"]) == 2
    # the first member's rule, as a single fit's: on so small a photo the SURE pick, a hold-out rule
    assert result.settings["stop"]["name"] == "sure" and len(described["sure"]) == 2
    assert float(result.uncertainty.max()) > 0
    # 30 steps: the rule (patience 40) could not fire; the reason says the budget ended both fits
    assert "each ran its step budget (30)" in result.stop_reason, result.stop_reason


def test_the_ensembles_stop_reason_counts_the_members_that_ran_out_of_steps():
    from types import SimpleNamespace

    from linr.ensemble import _how_members_stopped

    fired = SimpleNamespace(stop_reason="holdout: no new minimum of the loss on 5% held-out pixels for 40 steps")
    out = SimpleNamespace(stop_reason="step budget (90) reached before the holdout rule fired")
    fixed = SimpleNamespace(stop_reason="fixed steps")
    assert _how_members_stopped([fired, fired], 90) == "each stopped by its own rule"
    assert _how_members_stopped([out, fixed], 90) == "each ran its step budget (90)"
    assert _how_members_stopped([fired, out, fired], 90) == \
        "1 of 3 ran the step budget (90), the others stopped by their own rule"


def test_the_command_line_writes_the_spread_and_refuses_what_an_ensemble_cannot_do(tmp_path, capsys, noisy):
    write_image(tmp_path / "n.png", noisy)
    fit = ["--width", "16", "--depth", "2", "--steps", "10", "--device", "cpu", "--quiet"]
    base = ["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png")]
    assert main([*base, *fit, "--ensemble", "2", "--uncertainty", str(tmp_path / "u.tif"),
                 "--report", str(tmp_path / "r.json")]) == 0
    spread = tifffile.imread(tmp_path / "u.tif")
    assert spread.dtype == np.float32 and spread.shape == noisy.shape and spread.max() > 0
    assert "members' spread per pixel" in capsys.readouterr().out
    recorded = json.loads((tmp_path / "r.json").read_text())["uncertainty"]  # the report names the map
    assert recorded["file"] == str(tmp_path / "u.tif") and recorded["members"] == 2 and recorded["scale"] == "0-1"
    assert recorded["mean"] == pytest.approx(float(spread.mean()), rel=1e-5)
    assert recorded["largest"] == pytest.approx(float(spread.max()), rel=1e-6)
    for extra, message in [
        (["--uncertainty", str(tmp_path / "u2.tif")], "add --ensemble K"),
        (["--ensemble", "2", "--save-model", str(tmp_path / "m.pt")], "no single model"),
        (["--ensemble", "2", "--tile", "off", "--register", "translation"], "cannot register"),
        (["--ensemble", "2", "--uncertainty", str(tmp_path / "o.png"), "--force"], "names another output"),
    ]:
        err = run_err(capsys, [*base, *fit, "--force", *extra])
        assert message in err and err.count("\n") == 0, err
    assert not (tmp_path / "u2.tif").exists() and not (tmp_path / "m.pt").exists()


def test_a_float_map_of_a_16_bit_or_float_photo_is_in_its_units_an_8_bit_ones_on_the_0_1_scale(tmp_path, capsys,
                                                                                              noisy):
    """The spread of an ensemble of a 16-bit TIFF, written as float32 TIFF, is in counts (as the
    restored image is), the report saying the factor; its 16-bit PNG map and an 8-bit photo's
    TIFF map stay on the 0-1 scale (the units of the spread: linr.cli.spread_units)."""
    from linr.cli import spread_units
    from linr.images import ValueRange

    assert spread_units(ValueRange(0.0, 65535.0, "dtype"), "tiff") == 65535.0
    assert spread_units(ValueRange(0.0, 255.0, "dtype"), "tiff") is None
    assert spread_units(ValueRange(0.0, 1.0, "unit"), "tiff") is None
    assert spread_units(ValueRange(-2.0, 6.0, "data"), "tiff") == 8.0
    assert spread_units(ValueRange(0.0, 65535.0, "dtype"), "png") is None
    assert spread_units(None, "fits") is None
    tifffile.imwrite(tmp_path / "n.tif", np.round(noisy * 65535).astype(np.uint16))
    fit = ["--width", "16", "--depth", "2", "--steps", "10", "--device", "cpu", "--quiet", "--ensemble", "2"]
    base = ["restore", "--noisy", str(tmp_path / "n.tif"), "-o", str(tmp_path / "o.tif"), *fit]
    assert main([*base, "--uncertainty", str(tmp_path / "u.tif"), "--report", str(tmp_path / "r.json")]) == 0
    recorded = json.loads((tmp_path / "r.json").read_text())["uncertainty"]
    counts = tifffile.imread(tmp_path / "u.tif")
    assert counts.dtype == np.float32 and "65535" in recorded["scale"]
    assert float(counts.max()) == pytest.approx(recorded["largest"] * 65535.0, rel=1e-4)
    assert main([*base, "--force", "--uncertainty", str(tmp_path / "u.png"), "--report", str(tmp_path / "p.json")]) == 0
    from linr.images import read_image

    png, info = read_image(tmp_path / "u.png")  # 16-bit, the 0-1 scale
    assert info.bit_depth == 16
    assert json.loads((tmp_path / "p.json").read_text())["uncertainty"]["scale"] == "0-1"
    assert float(png.max()) == pytest.approx(json.loads((tmp_path / "p.json").read_text())["uncertainty"]["largest"],
                                             abs=1e-4)
    write_image(tmp_path / "n8.png", noisy)
    assert main(["restore", "--noisy", str(tmp_path / "n8.png"), "-o", str(tmp_path / "o8.png"), *fit,
                 "--uncertainty", str(tmp_path / "u8.tif"), "--report", str(tmp_path / "r8.json")]) == 0
    assert json.loads((tmp_path / "r8.json").read_text())["uncertainty"]["scale"] == "0-1"
    assert float(tifffile.imread(tmp_path / "u8.tif").max()) < 1
    # an OME input's pixel size and axes go into the map too (it came back a plain TIFF)
    tifffile.imwrite(tmp_path / "n.ome.tif", np.round(noisy[..., 0] * 65535).astype(np.uint16), ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
    assert main(["restore", "--noisy", str(tmp_path / "n.ome.tif"), "-o", str(tmp_path / "o.ome.tif"), *fit,
                 "--uncertainty", str(tmp_path / "u.ome.tif")]) == 0
    with tifffile.TiffFile(tmp_path / "u.ome.tif") as stored:
        assert stored.is_ome and 'PhysicalSizeX="0.25"' in stored.ome_metadata and stored.pages[0].dtype == np.float32
    capsys.readouterr()


def test_bad_ensemble_sizes_are_one_line(noisy):
    for bad in (0, 65, 2.5):
        with pytest.raises(InputError, match="ensemble must be a whole number"):
            linr.restore(linr.noisy(noisy), ensemble=bad, model=SMALL, steps=2, device="cpu", progress=False)


def test_a_per_step_callback_follows_one_fit_not_an_ensembles_members(noisy):
    seen = []
    linr.restore(linr.noisy(noisy), model=SMALL, steps=3, stop="fixed", device="cpu", progress=False,
                 on_step=lambda step, output, loss, tile: seen.append((step, tuple(output.shape), tile)))
    assert seen == [(s, (1, 3, 16, 16), None) for s in range(3)]
    with pytest.raises(InputError, match="per-step callback"):
        linr.restore(linr.noisy(noisy), ensemble=2, model=SMALL, steps=2, device="cpu", progress=False,
                     on_step=lambda *a: None)


def test_an_ensemble_says_it_fits_the_whole_image_where_one_fit_would_be_tiled(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "big.png", rng.random((400, 400, 1)).astype(np.float32))
    # the defaults' pilot (tiled above 384 px when fitted once), one step
    base = ["restore", "--noisy", str(tmp_path / "big.png"), "-o", str(tmp_path / "o.png"), "--steps", "1",
            "--device", "cpu", "--quiet"]
    assert main([*base, "--ensemble", "2"]) == 0
    assert "each member fits the whole image (ensembles are not tiled; one fit would use 16 tiles" in capsys.readouterr().err
    assert main([*base, "--force"]) == 0
    assert "ensembles are not tiled" not in capsys.readouterr().err
