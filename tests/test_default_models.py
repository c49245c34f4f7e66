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
