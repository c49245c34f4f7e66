"""The networks the defaults choose when none is named (linr.tasks.default_model): the inpainting
network (omega_0 15), and where the paper's stays."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from PIL import Image

import linr
from linr.cli import main
from linr.models import ModelConfig
from linr.tasks import DEFAULT_INPAINT_MODEL, DEFAULT_PILOT_MODEL, resolve


def _photo(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size] / size
    clean = np.stack([0.5 + 0.4 * np.sin(4 * xx + c) * np.cos(3 * yy) for c in range(3)], -1).astype(np.float32)
    return clean, rng.random((size, size)) < 0.3


def test_inpainting_gets_the_default_network_unless_one_is_named() -> None:
    clean, observed = _photo()
    photo = linr.masked(clean * observed[..., None], observed)
    assert DEFAULT_INPAINT_MODEL.omega_0 != ModelConfig().omega_0  # not the paper's
    assert dataclasses.replace(DEFAULT_INPAINT_MODEL, omega_0=ModelConfig().omega_0) == ModelConfig()  # nothing else
    assert resolve([photo])[1].model == DEFAULT_INPAINT_MODEL
    assert resolve([photo], preset="paper")[1].model == ModelConfig()  # the paper's mathematics
    named = ModelConfig(omega_0=30.0)
    assert resolve([photo], model=named)[1].model == named  # a network named is kept, even the paper's
    assert resolve([photo, linr.noisy(clean)])[1].model == ModelConfig()  # joint fits: the paper's
    noisy = linr.noisy(np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32))
    assert resolve([noisy])[1].model == DEFAULT_PILOT_MODEL  # the denoising pilot, unchanged
    result = linr.restore(photo, steps=3, device="cpu", progress=False, refine="none")
    assert result.settings["model"] == dataclasses.asdict(DEFAULT_INPAINT_MODEL)


def test_command_line_and_batch_say_which_network(tmp_path, capsys) -> None:
    clean, observed = _photo()
    Image.fromarray((clean * observed[..., None] * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "m_mask.png")
    fast = ["--steps", "3", "--device", "cpu", "--refine", "none"]
    base = ["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "m_mask.png")]
    assert main([*base, "-o", str(tmp_path / "a.png"), *fast]) == 0
    out = capsys.readouterr().out
    assert f"network: siren 7x256 at omega_0 {DEFAULT_INPAINT_MODEL.omega_0:g} (the default for a photo with missing" in out
    assert main([*base, "-o", str(tmp_path / "b.png"), "--omega0", "30", *fast]) == 0
    assert "network:" not in capsys.readouterr().out  # named: nothing to say
    # a batch records the network; one made before it (the paper's network) says why it does not resume
    (tmp_path / "in").mkdir()
    (tmp_path / "m.png").rename(tmp_path / "in" / "m.png")
    batch = ["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
             "-o", str(tmp_path / "out"), *fast, "--quiet"]
    assert main(batch) == 0
    manifest = tmp_path / "out" / "manifest.jsonl"
    made = json.loads(manifest.read_text().splitlines()[-1])
    assert made["batch"]["inpaint_model"] == dataclasses.asdict(DEFAULT_INPAINT_MODEL) and made["status"] == "done"
    # the paper's network named is recorded as a batch of the twenty-second session recorded its default
    # (no model, no inpaint_model): such a batch says why it does not resume, and resumes with --omega0 30
    old = ["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
           "-o", str(tmp_path / "old"), *fast, "--quiet"]
    assert main([*old, "--omega0", "30"]) == 0
    made = json.loads((tmp_path / "old" / "manifest.jsonl").read_text().splitlines()[-1])
    assert made["batch"]["model"] is None and "inpaint_model" not in made["batch"] and made["status"] == "done"
    capsys.readouterr()
    assert main(old) == 2
    said = capsys.readouterr().err
    assert "inpaint_model; the images were fitted by the paper's network (omega_0 30)" in said
    assert "--omega0 30 to resume as made" in said
    assert main([*old, "--omega0", "30"]) == 0  # as the hint says


def test_a_refined_super_resolution_gets_the_narrow_network_and_says_so(tmp_path, capsys, monkeypatch) -> None:
    import linr.internal
    from linr.tasks import DEFAULT_SR_MODEL, narrow_super_resolution

    import linr.tasks

    monkeypatch.setattr(linr.internal, "learnable", lambda *_: False)  # the refinement's slow part, not tested here
    assert linr.tasks.SR_NARROW_ABOVE == linr.tasks.TILE_WHOLE_UP_TO  # where the defaults tile
    assert resolve([linr.lowres(_photo(8)[0], 4)])[1].model == ModelConfig()  # a photo restored whole: the paper's
    monkeypatch.setattr(linr.tasks, "SR_NARROW_ABOVE", 4)  # as if these small photos were large
    clean, _ = _photo(8)
    low = linr.lowres(clean, 4)
    assert DEFAULT_SR_MODEL == ModelConfig(width=128)  # the paper's but for its width
    assert narrow_super_resolution([low], preset=None) and resolve([low])[1].model == DEFAULT_SR_MODEL
    assert resolve([low])[1].lr == 1e-4 and resolve([low])[1].steps == 500  # the paper's rate and steps
    # measured with its refinement only: without it, with a kept model, a preset, a network or a stop
    # rule named, another downsampler, or beside a noisy photo, the paper's network
    for options in ({"refine": "none"}, {"refine": "grouped-views"}, {"keep_model": True}, {"preset": "paper"},
                    {"stop": "fixed"}):
        assert resolve([low], **options)[1].model == ModelConfig(), options
    assert resolve([low], model=ModelConfig(width=64))[1].model == ModelConfig(width=64)
    assert resolve([linr.lowres(clean, 4, kernel="bicubic")])[1].model == ModelConfig()
    assert resolve([linr.lowres(clean, 2)])[1].model == ModelConfig()  # measured at x4 only
    assert resolve([low, linr.noisy(np.full((32, 32, 3), 0.5, np.float32))])[1].model == ModelConfig()
    Image.fromarray((clean[::4, ::4] * 255).astype(np.uint8)).save(tmp_path / "low.png")
    fast = ["--steps", "2", "--device", "cpu"]
    assert main(["restore", "--lowres", str(tmp_path / "low.png"), "--factor", "4", "-o", str(tmp_path / "a.png"),
                 *fast]) == 0
    assert "network: siren 7x128 at omega_0 30 (the default for a low-res photo refined after the fit at x4 above 4 px" \
        in capsys.readouterr().out
    assert main(["restore", "--lowres", str(tmp_path / "low.png"), "--factor", "4", "-o", str(tmp_path / "b.png"),
                 "--refine", "none", *fast]) == 0
    assert "network:" not in capsys.readouterr().out
    (tmp_path / "in").mkdir()
    (tmp_path / "low.png").rename(tmp_path / "in" / "low.png")
    assert main(["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "out"), *fast,
                 "--quiet"]) == 0
    made = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    assert made["batch"]["sr_model"]["model"] == dataclasses.asdict(DEFAULT_SR_MODEL) and made["status"] == "done"


def test_a_super_resolution_batch_made_before_the_narrow_network_resumes_with_the_papers(tmp_path, capsys,
                                                                                          monkeypatch) -> None:
    import linr.internal

    monkeypatch.setattr(linr.internal, "learnable", lambda *_: False)
    clean, _ = _photo(8)
    (tmp_path / "in").mkdir()
    Image.fromarray((clean[::4, ::4] * 255).astype(np.uint8)).save(tmp_path / "in" / "low.png")
    batch = ["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "out"), "--steps", "2",
             "--device", "cpu", "--quiet"]
    assert main([*batch, "--width", "256"]) == 0  # the paper's named: recorded as batches made before recorded the default
    manifest = tmp_path / "out" / "manifest.jsonl"
    made = json.loads(manifest.read_text().splitlines()[-1])
    assert made["batch"]["model"] is None and "sr_model" not in made["batch"]
    capsys.readouterr()
    assert main(batch) == 2  # the defaults now record their network: such a batch says why it does not resume
    said = capsys.readouterr().err
    assert "sr_model; the images were fitted by the paper's network" in said and "--width 256 to resume as made" in said
    assert main([*batch, "--width", "256"]) == 0  # as the hint says
