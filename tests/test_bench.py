"""The paper-table benchmark: table descriptions, report schema, tiny end-to-end runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from linr.bench.report import summarise
from linr.bench.runner import ROW_FIELDS, find_real_pairs
from linr.bench.spec import PROFILES, TABLES, find_tables
from linr.bench.tables import run_bench
from linr.errors import InputError

from .conftest import DATA, ROOT, crop, load

NOT_IMPLEMENTED = {"S2S", "DeepRED"}  # the paper's other baselines, not reproduced here


@pytest.fixture(scope="module")
def paper() -> dict:
    path = DATA / "paper_results.json"
    if not path.exists():
        pytest.skip("paper_results.json not found")
    return json.loads(path.read_text())["tables"]


def test_every_paper_table_is_described(paper: dict) -> None:
    assert {t.key for t in TABLES} == set(paper)
    assert sorted(t.number for t in TABLES) == list(range(1, 15))


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.key)
def test_table_methods_and_images_match_the_paper(table, paper: dict) -> None:
    printed = paper[table.key]
    labels = {m.label for m in table.methods}
    assert set(printed["methods"]) - labels <= NOT_IMPLEMENTED
    ours = {Path(p).stem for p in table.images}
    theirs = set(printed["images"]) - {"average", "lena"}
    assert theirs <= ours, f"images of the paper missing from {table.key}"
    assert all((DATA / p).exists() for p in table.images)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.key)
def test_paper_profile_uses_the_papers_settings(table, paper: dict) -> None:
    setting = paper[table.key]["setting"]
    task = table.corruption.task
    steps = PROFILES["paper"].steps[task]
    if "iterations" in setting:
        assert steps == setting["iterations"]
    assert PROFILES["paper"].crop is None
    if "factor" in setting:
        assert table.corruption.factor == setting["factor"] and table.multiple == setting["factor"]
    if "sigma" in setting and task == "denoise":
        assert table.corruption.sigma == setting["sigma"]
    if "keep" in setting:
        assert table.corruption.keep == setting["keep"]
    if "observations" in setting:
        kinds = {"denoise": "noisy", "sr": "lowres", "inpaint": "masked"}
        assert table.corruption.kinds == tuple(kinds[o] for o in setting["observations"])
    if table.metric_task == "deblur":
        assert setting["task"] == "deblur"


def test_joint_vs_single_tables_point_at_the_single_and_joint_settings() -> None:
    by_number = {t.number: t for t in TABLES}
    for number, joint in ((8, 5), (9, 6), (10, 7)):
        table = by_number[number]
        assert table.corruption == by_number[joint].corruption
        singles = [m.corruption for m in table.methods if m.corruption is not None]
        assert {c.kinds[0] for c in singles} == set(table.corruption.kinds)


def test_find_tables() -> None:
    assert [t.number for t in find_tables(["8", "table2_sr_x4_set5", "table8"])] == [2, 8]
    assert len(find_tables(None)) == 14
    with pytest.raises(InputError, match="unknown table"):
        find_tables(["99"])


def test_summary_recomputes_paper_averages_over_images_run(paper: dict) -> None:
    rows = [
        {"table": "table1_denoise_set9", "table_number": 1, "image": name, "method": "LINR",
         "status": "ok", "psnr_paper": value, "psnr_standard": value, "ssim_standard": 0.5,
         "ssim_paper": 0.6, "psnr_y_standard": None, "peak_psnr": None, "fit_s": 1.0}
        for name, value in (("f16", 30.0), ("house", 24.0))
    ]
    (entry,) = summarise(rows, paper)
    assert entry["paper_psnr"] == pytest.approx((30.36 + 23.10) / 2)
    assert entry["psnr_paper"] == pytest.approx(27.0)
    assert entry["diff_psnr"] == pytest.approx(27.0 - (30.36 + 23.10) / 2)
    assert entry["paper_basis"] == "same 2 images"


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_tiny_bench_run_end_to_end_and_resume(tmp_path: Path) -> None:
    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    out = tmp_path / "bench"
    kwargs = dict(profile="quick", tables=["1"], data=DATA, out=out, images=["house"], crop=24,
                  steps=2, methods=["LINR", "DIP", "tv", "input"], device="cpu", log=lambda s: None)
    first = run_bench(**kwargs)
    rows = _rows(out)
    assert [r["method"] for r in rows] == ["LINR", "DIP", "TV", "Noisy input"]
    assert first["fresh"] == 4
    for r in rows:
        assert tuple(r) == ROW_FIELDS
        assert r["profile"] == "quick" and r["device"] == "cpu" and r["image_size"] == [24, 24]
        assert r["corruption_seeds"]["noisy"] == rows[0]["corruption_seeds"]["noisy"]
        assert r["status"] == "ok" and np.isfinite(r["psnr_paper"]) and 0 < r["ssim_standard"] < 1
        assert (out / r["image_path"]).exists()
    linr_row = rows[0]
    assert linr_row["steps"] == 2 and linr_row["paper_psnr"] == 23.10
    assert linr_row["diff_psnr"] == pytest.approx(linr_row["psnr_paper"] - 23.10)
    assert rows[2]["psnr_paper"] > rows[3]["psnr_paper"]  # TV beats the noisy input
    with open(out / "results.csv") as f:
        assert tuple(next(csv.reader(f))) == ROW_FIELDS
    report = (out / "report.md").read_text()
    assert "## Table 1" in report and "--crop 24" in report and "same 1 images" in report
    summary = json.loads((out / "summary.json").read_text())
    assert {e["method"] for e in summary["averages"]} == {"LINR", "DIP", "TV", "Noisy input"}
    # A second run finds every fit in jobs.jsonl and redoes none of them.
    again = run_bench(**kwargs)
    assert again["fresh"] == 0
    assert [r["psnr_paper"] for r in _rows(out)] == [r["psnr_paper"] for r in rows]
    assert all(r["resumed"] for r in _rows(out))
    # A researcher's trial: the oracle includes a fixed budget's last iterate (it lay 0.33 dB under
    # the image returned), the report's deviations are this run's, not the profile's it replaced,
    # and the inputs as fitted are kept exactly (a float32 TIFF, not only an 8-bit PNG), named by their own size
    assert linr_row["peak_psnr"] >= linr_row["psnr_paper"] - 1e-9 and linr_row["peak_step"] <= 3
    assert "images: 64x64 centre crops" not in report and "LINR steps: denoise 50" not in report
    assert "--crop 24: every image centre-cropped to 24x24" in report and "| time s |" in report
    import tifffile

    fitted = tifffile.imread(out / "images" / "inputs" / "house_noisy_24x24.tif")
    assert fitted.dtype == np.float32 and not np.allclose(fitted * 255, np.round(fitted * 255), atol=1e-3)  # unrounded


def test_bench_seed_changes_the_fits_not_the_corruptions(tmp_path: Path) -> None:
    """--seed (a researcher's spread over seeds): every fit's seed, the same noisy inputs, its own jobs."""
    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    out = tmp_path / "bench"
    kwargs = dict(profile="quick", tables=["1"], data=DATA, out=out, images=["house"], crop=16,
                  steps=2, methods=["LINR"], device="cpu", log=lambda s: None)
    run_bench(**kwargs)
    first = _rows(out)[0]
    assert run_bench(**kwargs, seed=3)["fresh"] == 1
    again = _rows(out)[0]
    assert again["seed"] == 3 and first["seed"] == 0 and again["corruption_seeds"] == first["corruption_seeds"]
    assert again["psnr_paper"] != first["psnr_paper"]
    assert "--seed 3: every fit's seed" in (out / "report.md").read_text()


def test_joint_vs_single_table_reuses_the_fits(tmp_path: Path) -> None:
    if not (DATA / "set5" / "butterfly.png").exists():
        pytest.skip("test data not found")
    out = tmp_path / "bench"
    result = run_bench(profile="quick", tables=["2", "5", "8"], data=DATA, out=out,
                       images=["butterfly"], crop=16, steps=2, methods=["LINR", "Denoising", "SR", "Together"],
                       device="cpu", plots=False, log=lambda s: None)
    rows = {(r["table_number"], r["method"]): r for r in _rows(out)}
    assert rows[(8, "SR")]["job"] == rows[(2, "LINR")]["job"]
    assert rows[(8, "Together")]["job"] == rows[(5, "LINR")]["job"]
    assert rows[(8, "Denoising")]["first_table"] == 8
    assert result["fresh"] == 3  # SR, joint, and the new denoising fit


def test_deblurring_columns_fit_the_blur_the_photo_was_made_with(tmp_path: Path) -> None:
    """Table 4's photos are blurred circularly and say so: the defaults' column fits that blur and
    refines it (``grouped-deblur``), and its fit is keyed apart from the paper column's."""
    if not (DATA / "deblur" / "parrots.png").exists():
        pytest.skip("test data not found")
    out = tmp_path / "bench"
    run_bench(profile="quick", tables=["4"], data=DATA, out=out, images=["parrots"], crop=32, steps=2,
              methods=["LINR", "LINR (default)", "DIP"], device="cpu", plots=False, log=lambda s: None)
    rows = {r["method"]: r for r in _rows(out)}
    assert rows["LINR"]["job"] != rows["LINR (default)"]["job"]
    jobs = {j["key"]: j for j in map(json.loads, (out / "jobs.jsonl").read_text().splitlines())}
    default = jobs[rows["LINR (default)"]["job"]]
    assert default["spec"]["blur_boundary"] == ["circular"]
    assert jobs[rows["DIP"]["job"]]["spec"]["blur_boundary"] == ["circular"]  # DIP fits the blur too
    assert "blur_boundary" not in jobs[rows["LINR"]["job"]]["spec"]  # the paper column's keys as before
    assert default["settings"]["refine"]["name"] == "grouped-deblur"
    assert default["settings"]["refine"]["solved"] == {"solver": "fft"}  # circular: exact


def test_real_noise_table_runs_on_pairs(tmp_path: Path) -> None:
    from linr.images import write_image

    rng = np.random.default_rng(0)
    mean = rng.random((20, 20, 3))
    write_image(tmp_path / "cam1_mean.png", mean)
    write_image(tmp_path / "cam1_real.png", np.clip(mean + 0.05 * rng.standard_normal(mean.shape), 0, 1))
    assert [name for name, _, _ in find_real_pairs(tmp_path)] == ["cam1"]
    run_bench(profile="quick", tables=["14"], data=tmp_path, out=tmp_path / "out", steps=2,
              methods=["LINR"], device="cpu", plots=False, log=lambda s: None)
    (row,) = _rows(tmp_path / "out")
    assert row["table_number"] == 14 and row["image"] == "cam1" and row["status"] == "ok"
    # Without pairs the table is skipped with the reason in the report.
    run_bench(profile="quick", tables=["14"], data=tmp_path / "out", out=tmp_path / "out2",
              device="cpu", log=lambda s: None)
    assert "no *_real / *_mean pairs" in (tmp_path / "out2" / "report.md").read_text()


def test_cli_bench_errors_are_one_line(tmp_path: Path) -> None:
    env_cmd = [sys.executable, "-m", "linr", "bench", "--tables", "99", "--out", str(tmp_path)]
    proc = subprocess.run(env_cmd, capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown table" in proc.stderr
    help_text = subprocess.run([sys.executable, "-m", "linr", "bench", "--help"], capture_output=True,
                               text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert "--profile" in help_text.stdout and "--tables" in help_text.stdout


def test_unknown_method_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown method"):
        run_bench(tables=["2"], data=DATA, out=tmp_path, methods=["LINR", "waifu2x"], device="cpu")
    with pytest.raises(InputError, match="--images: baby not in the chosen tables' images"):  # set9's table
        run_bench(tables=["1"], data=DATA, out=tmp_path, images=["baby"], device="cpu")
    assert not (tmp_path / "report.md").exists()


def test_full_size_bicubic_reproduces_the_papers_number(tmp_path: Path) -> None:
    """Corruption, SR cropping and the paper's metric together, against the paper's own value."""
    if not (DATA / "set5" / "woman.png").exists():
        pytest.skip("test data not found")
    run_bench(profile="paper", tables=["12"], data=DATA, out=tmp_path, images=["woman"],
              methods=["Bicubic"], device="cpu", plots=False, log=lambda s: None)
    (row,) = _rows(tmp_path)
    assert row["image_size"] == [344, 224]  # 344x228 centre-cropped to a multiple of 8
    assert row["paper_psnr"] == 21.25 and abs(row["diff_psnr"]) < 0.01


# --- issue 11: help texts, progress, a closed pipe ----------------------------------------------


@pytest.mark.parametrize("part", [[], ["speed"], ["stopping"], ["presets"], ["photon"], ["averaging"]],
                         ids=lambda p: p[0] if p else "tables")
def test_help_describes_each_part_in_plain_words(part, capsys) -> None:
    from linr.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["bench", *part, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]  # after the usage block
    assert len(description) > 100
    for markup in ("``", ":func:", ":class:", ":meth:", "**", "register("):
        assert markup not in text, f"{markup!r} in linr bench {' '.join(part)} --help"


def test_progress_line_before_each_fit_with_the_time_left(tmp_path: Path) -> None:
    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    lines: list[str] = []
    kwargs = dict(profile="quick", tables=["1"], data=DATA, out=tmp_path, images=["house", "f16"], crop=16,
                  steps=2, methods=["LINR", "tv", "input"], device="cpu", plots=False, log=lines.append)
    run_bench(**kwargs)
    fitting = [line.split(" ", 1)[1] for line in lines if ": fitting (" in line]
    assert [line.split(":")[0] for line in fitting] == [
        "table 1 f16 LINR", "table 1 f16 TV", "table 1 house LINR", "table 1 house TV"]
    assert fitting[0].endswith("fitting (1/4 of this table)")  # nothing finished: no estimate yet
    assert all(" elapsed, ~" in line and line.endswith(" left)") for line in fitting[1:])
    assert "(3/4 of this table, " in fitting[2]
    lines.clear()
    run_bench(**kwargs)  # resumed: nothing to fit, nothing announced
    assert lines == []


def test_bench_into_a_closed_pipe_finishes_quietly(tmp_path: Path) -> None:
    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    proc = subprocess.Popen([sys.executable, "-m", "linr", "bench", "--tables", "1", "--images", "house",
                             "--crop", "16", "--methods", "tv", "--data", str(DATA), "--out", str(tmp_path),
                             "--no-plots", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    proc.stdout.close()  # `linr bench ... | head -0`
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert (tmp_path / "report.md").exists()


def test_one_data_folder_rule_for_every_bench_part(tmp_path, monkeypatch):
    from linr.bench import data_dir
    from linr.bench.speed import default_data

    monkeypatch.delenv("LINR_DATA", raising=False)
    (tmp_path / "work").mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert data_dir().resolve() == (tmp_path / "shared" / "data").resolve()  # the default
    other = tmp_path / "mine"
    other.mkdir()
    monkeypatch.setenv("LINR_DATA", str(other))
    assert data_dir() == other and default_data() == other  # the variable beats the default
    assert data_dir(str(tmp_path / "shared" / "data")) == tmp_path / "shared" / "data"  # the option
    with pytest.raises(InputError, match="--data .*not a folder"):
        data_dir(str(tmp_path / "missing"))
    monkeypatch.delenv("LINR_DATA")
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    with pytest.raises(InputError, match="no test-image folder"):
        data_dir()


def test_real_noise_classical_methods_estimate_the_noise_level(tmp_path: Path) -> None:
    from linr.images import write_image

    rng = np.random.default_rng(1)
    mean = crop(load("set9/house.png"), 32)  # a photo (NLM needs structure to find patches)
    write_image(tmp_path / "cam2_mean.png", mean, bit_depth=16)
    write_image(tmp_path / "cam2_real.png", np.clip(mean + 0.04 * rng.standard_normal(mean.shape), 0, 1),
                bit_depth=16)
    run_bench(profile="quick", tables=["14"], data=tmp_path, out=tmp_path / "out",
              methods=["NLM", "Noisy input"], device="cpu", plots=False, log=lambda s: None)
    rows = {r["method"]: r for r in _rows(tmp_path / "out")}
    assert rows["NLM"]["psnr_standard"] > rows["Noisy input"]["psnr_standard"]
    job = [json.loads(line) for line in (tmp_path / "out" / "jobs.jsonl").read_text().splitlines()
           if json.loads(line)["spec"]["kind"] == "nlm"][0]
    assert job["settings"]["sigma_estimated"] == pytest.approx(0.04 * 255, rel=0.3)  # 10.2 on 0-255


def test_averaging_bench_writes_rows_resumes_and_reports(tmp_path: Path, capsys) -> None:
    from linr.bench.averaging import AVERAGES
    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    rows = tmp_path / "avg.jsonl"
    argv = ["bench", "averaging", "--data", str(DATA), "--images", "house", "--colours", "rgb", "grey",
            "--sizes", "24", "--steps", "12", "--tail", "3", "--patience", "2", "--rows", str(rows)]
    assert main(argv) == 0
    first = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [(r["key"], r["split"], r["size"]) for r in first] == [
        ("house_rgb_s24_n25", "tune", [24, 24, 3]), ("house_grey_s24_n25", "tune", [24, 24, 1])]
    for r in first:
        assert set(r["series"]) == {"raw", *AVERAGES}
        assert all(len(s["psnr"]) == len(s["ho"]) == r["steps_run"] <= 12 for s in r["series"].values())
    assert main(argv) == 0  # a rerun resumes: no new rows
    assert rows.read_text().splitlines() == [json.dumps(r) for r in first]
    out = capsys.readouterr().out
    assert out.count("recorded house_") == 2 and "tune   pick raw+window40" in out
    assert main([*argv, "--no-record", "--markdown", "window40"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| row |") and len(table) == 2 + 2


def test_denoise_bench_records_variants_resumes_and_tables(tmp_path: Path, capsys) -> None:
    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists() or not (DATA / "set5" / "bird.png").exists():
        pytest.skip("test data not found")
    rows = tmp_path / "variants.jsonl"
    argv = ["bench", "denoise", "--data", str(DATA), "--images", "house", "set5/bird", "--size", "24",
            "--steps", "3", "--width", "16", "--variants", "prior=none", "prior=tv:auto", "--rows", str(rows)]
    assert main(argv) == 0
    first = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [(r["image"], r["split"], r["variant"]) for r in first] == [
        ("house", "tune", "prior=none"), ("house", "tune", "prior=tv:auto"),
        ("set5/bird", "held-out", "prior=none"), ("set5/bird", "held-out", "prior=tv:auto")]
    none, auto = first[0], first[1]
    assert none["prior_used"] is None and auto["prior"] == "tv:auto"
    assert 0.05 < float(auto["prior_used"].split(":")[1]) < 0.15  # sigma 25: about 0.1
    assert all(r["steps"] == 3 and r["width"] == 16 and r["steps_run"] <= 3 for r in first)
    for r in first:  # the oracle: the best raw iterate, unclipped, beside the returned image unclipped
        assert 1 <= r["peak_step"] <= r["steps_run"] and r["psnr_unclipped"] <= r["psnr"] + 1e-9
    assert main(argv) == 0  # a rerun resumes: no new rows
    assert len(rows.read_text().splitlines()) == 4
    capsys.readouterr()
    assert main(["bench", "denoise", "--table", "--rows", str(rows), "--variants", "prior=none",
                 "prior=tv:auto"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| split | image | prior=none | prior=tv:auto |"
    assert sum(line.startswith("| tune | house rgb 24 px") for line in table) == 1
    assert table[-2].startswith("| tune, rgb 24 px, sigma 25, steps 3, width 16: mean (1)")
    assert table[-1].startswith("| held-out, rgb 24 px, sigma 25, steps 3, width 16: mean (1)")
    assert main(["bench", "denoise", "--images", "house", "--variants", "prior=tv:x", "--data", str(DATA)]) == 2
    assert "bad prior" in capsys.readouterr().err


def test_denoise_bench_variants_join_settings_and_name_bad_ones() -> None:
    from linr.bench.denoise import variant_options
    from linr.errors import InputError
    from linr.models import ModelConfig

    assert variant_options("width=64,depth=5,steps=900,refine=none") == {
        "model": ModelConfig(width=64, depth=5), "steps": 900, "refine": "none"}
    assert variant_options("omega_0=20,width=32")["model"] == ModelConfig(width=32, omega_0=20.0)
    for bad, said in (("width=x", "needs a number"), ("depth=0", "must be a positive number"),
                      ("steps=1.5", "whole number"), ("width=64,foo=1", "unknown variant"),
                      ("width=64,width=32", "width given twice"), ("omega_0=nan", "positive number"),
                      ("tile=abc", "bad variant 'tile=abc': tile must be"), ("tile=8", "at least 16")):
        with pytest.raises(InputError, match=said):
            variant_options(bad)
    assert variant_options("tile=256:32,width=64") == {"tile": "256:32", "model": ModelConfig(width=64)}
    assert variant_options("tile=off") == {"tile": "off"}
    from linr.bench.denoise import _key_variant

    keys = {v: _key_variant(v, variant_options(v)) for v in ("default", "refine=wiener", "width=64", "refine=none", "bm3d")}
    from linr.tasks import pilot_tag

    assert pilot_tag().startswith("@pilot7x64")  # the network, then the learning rate where not the paper's
    assert keys == {"default": f"default-tv:auto-except-rgb-above128-grouped{pilot_tag()}", "refine=wiener": f"refine=wiener{pilot_tag()}",
                    "width=64": "width=64", "refine=none": "refine=none", "bm3d": "bm3d"}  # rows say which network
    from linr.bench.averaging import observations_for
    from linr.bench.denoise import _plan_suffix
    from linr.tasks import DENOISE_WHOLE_UP_TO, TILE_WHOLE_UP_TO

    def noisy(rows: int, cols: int) -> list:
        return observations_for("denoise", np.full((rows, cols, 3), 0.5), sigma=25.0, seed=0)

    big, small = noisy(DENOISE_WHOLE_UP_TO + 1, 16), noisy(DENOISE_WHOLE_UP_TO, 16)
    tiled = {v: _plan_suffix(v, variant_options(v), big, None)
             for v in ("default", "tile=auto", "tile=256:32", "width=64", "bm3d")}
    above = f"@tiles128-above{DENOISE_WHOLE_UP_TO}"  # the pilot's tiles of 128 px (forty-sixth session)
    assert tiled == {"default": above, "tile=auto": above, "tile=256:32": "", "width=64": "", "bm3d": ""}
    assert _plan_suffix("default", {}, small, None) == ""  # whole, as rows made before said
    # a network named is tiled by 'auto' only above the size any fit is
    assert _plan_suffix("width=64", variant_options("width=64"), noisy(TILE_WHOLE_UP_TO + 1, 16), None) == \
        f"@tiles-above{TILE_WHOLE_UP_TO}"


def _pilot_precision_tag() -> str:
    """The precision part of :func:`linr.tasks.pilot_tag` on this machine ('-bf16' where its CPU
    has bf16 units)."""
    from linr.tasks import pilot_precision

    return "" if pilot_precision("cpu") == "float32" else f"-{pilot_precision('cpu')}"


def test_denoise_bench_ablation_variants_name_their_stop_rate_and_preset() -> None:
    # the variants that take one of the defaults' choices away (#15: what each kept change adds)
    from linr.bench.denoise import _key_variant, _plan_suffix, variant_options
    from linr.errors import InputError
    from linr.tasks import pilot_tag

    assert variant_options("stop=holdout:0.05:40:window40") == {"stop": "holdout:0.05:40:window40"}
    assert variant_options("lr=0.0001,preset=paper") == {"lr": 1e-4, "preset": "paper"}
    for bad, said in (("stop=bogus", "unknown stop rule 'bogus'"), ("lr=0", "positive number"),
                      ("lr=x", "needs a number"), ("preset=nope", "unknown preset 'nope'"),
                      ("precision=fp8", "precision is one of float32, bf16, tf32, auto")):
        with pytest.raises(InputError, match=said):
            variant_options(bad)
    keys = {v: _key_variant(v, variant_options(v)) for v in (
        "stop=holdout:0.05:40:window40", "stop=holdout:0.05:40", "lr=0.0001", "preset=paper")}
    assert keys == {"stop=holdout:0.05:40:window40": f"stop=holdout:0.05:40:window40{pilot_tag()}",  # still the pilot
                    "stop=holdout:0.05:40": "stop=holdout:0.05:40",  # no average: the paper's network
                    # the pilot at its own rate, not retried (bf16 where the CPU has bf16 units)
                    "lr=0.0001": "lr=0.0001@pilot7x64" + _pilot_precision_tag(),
                    "preset=paper": "preset=paper"}
    from linr.bench.averaging import observations_for
    from linr.sure import UP_TO_PIXELS_COLOUR, pick_tag

    def noisy(side: int) -> list:
        return observations_for("denoise", np.full((side, side, 3), 0.5), sigma=25.0, seed=0)

    small = noisy(64)
    # the default picks by SURE there, its fits in float32 (said where the pilot's tag says bf16)
    assert _plan_suffix("default", {}, small, None) == f"@{pick_tag()}" + ("-float32" if _pilot_precision_tag() else "")
    assert _plan_suffix("precision=bf16", variant_options("precision=bf16"), small, None) == f"@{pick_tag()}"
    assert _plan_suffix("stop=holdout:0.05:40:window40", variant_options("stop=holdout:0.05:40:window40"),
                        small, None) == ""  # a stop named: the held-out one
    assert _plan_suffix("width=256", variant_options("width=256"), small, None).startswith("@sure")  # any network
    assert _plan_suffix("stop=sure", variant_options("stop=sure"), small, None).startswith("@sure")  # asked for
    for other in ("preset=paper", "refine=wiener", "tile=32:8", "bm3d"):
        assert _plan_suffix(other, variant_options(other), small, None) == "", other
    above = noisy(int(np.sqrt(UP_TO_PIXELS_COLOUR)) + 8)  # colour above the default's limit: the held-out stop
    assert _plan_suffix("default", {}, above, None) == ""
    assert _plan_suffix("stop=sure", variant_options("stop=sure"), above, None).startswith("@sure")


def test_denoise_table_gives_a_variant_the_first_ones_seconds() -> None:
    from linr.bench.denoise import table

    base = {"split": "report", "image": "f16", "colour": "rgb", "size": 64, "sigma": 25.0}
    rows = {"a": {**base, "key": "a", "variant": "refine=wiener", "psnr": 30.0, "psnr_unclipped": 29.9, "seconds": 10.0,
                  "returned_step": 50, "steps_run": 90, "psnr_fit": 28.0, "psnr_curve": [20.0] * 90},
            "b": {**base, "key": "b", "variant": "preset=paper", "psnr": 27.0, "psnr_unclipped": 26.9, "seconds": 100.0,
                  "returned_step": 500, "steps_run": 500, "psnr_curve": [float(k) / 100 for k in range(1, 501)]}}
    text = table(rows, ["refine=wiener", "preset=paper"], equal_time=True)
    second = text.split("\n\n")[-1].splitlines()
    assert second[0] == ("| split | image | refine=wiener (seconds, PSNR) | preset=paper at those seconds (step, PSNR) "
                         "| preset=paper returned (seconds) |")
    assert second[2] == "| report | f16 rgb 64 px, sigma 25 | 10 s, 29.90 | 50, 0.50 | 26.90 (100 s) |"  # 10 s of 100: step 50
    assert second[3].startswith("| report, rgb 64 px, sigma 25: mean (1) | | 29.90 | 0.50 (-29.40) | 26.90 (-3.00)")
    rows["a"]["cpu_seconds"], rows["b"]["cpu_seconds"] = 20.0, 100.0  # CPU time where both rows have it
    assert "| 20 s, 29.90 | 100, 1.00 | 26.90 (100 s) |" in table(rows, ["refine=wiener", "preset=paper"], equal_time=True)
    # the other way round: a refined variant is not timed by its curve (named under the table), and a
    # variant that had ended by the first one's seconds shows what it returned
    swapped = table(rows, ["preset=paper", "refine=wiener"], equal_time=True).split("\n\n")
    assert "refine=wiener at" not in swapped[-2] and swapped[-1].startswith("Not given the first one's seconds") and \
        "refine=wiener" in swapped[-1]
    rows["c"] = {**rows["b"], "key": "c", "variant": "lr=0.01", "cpu_seconds": 5.0, "psnr_fit": None}
    assert "| 100 s, 26.90 | done, 26.90 | 26.90 (5 s) |" in table(rows, ["preset=paper", "lr=0.01"], equal_time=True)


def _denoise_house(tmp_path: Path, *options: str) -> tuple[Path, list[dict]]:
    """``linr bench denoise`` of set9's house with ``options``: its rows file and rows (a skip
    without the test data)."""
    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    rows = tmp_path / "variants.jsonl"
    assert main(["bench", "denoise", "--data", str(DATA), "--images", "house", *options, "--rows", str(rows)]) == 0
    return rows, [json.loads(line) for line in rows.read_text().splitlines()]


def test_denoise_bench_takes_whole_images_and_tiles(tmp_path: Path, capsys) -> None:
    from linr.cli import main

    rows, (row,) = _denoise_house(tmp_path, "--size", "full", "--steps", "2", "--width", "16", "--variants", "tile=160:32")
    assert row["size"] == "full" and row["key"].startswith("house_rgb_sfull_n25_tile=160:32")
    assert row["variant"] == "tile=160:32" and 10 < row["psnr"] < 40  # --width names the network: no pilot
    capsys.readouterr()
    assert main(["bench", "denoise", "--table", "--rows", str(rows), "--variants", "tile=160:32"]) == 0
    assert "| tune | house rgb whole, sigma 25, steps 2, width 16 |" in capsys.readouterr().out
    assert main(["bench", "denoise", "--images", "house", "--size", "ful", "--rows", str(rows)]) == 2
    assert "'full'" in capsys.readouterr().err


def test_denoise_bench_reads_the_fit_before_its_refinement_off_the_same_row(tmp_path: Path, capsys) -> None:
    from linr.cli import main

    rows, (row,) = _denoise_house(tmp_path, "--size", "24", "--steps", "3", "--width", "16", "--variants", "refine=wiener")
    assert row["refine"]["name"] == "wiener" and row["psnr_fit"] != row["psnr"]
    capsys.readouterr()
    assert main(["bench", "denoise", "--table", "--rows", str(rows), "--variants", "refine=none", "refine=wiener"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| tune | house"))
    assert f"{row['psnr_fit']:.2f} (" in line.split("|")[3] and f"{row['psnr']:.2f} (" in line.split("|")[4]
    assert main(["bench", "denoise", "--images", "house", "--variants", "refine=bm3d", "--data", str(DATA)]) == 2
    assert "unknown refinement" in capsys.readouterr().err


def test_denoise_bench_puts_bm3d_beside_the_fits_or_says_why_not(tmp_path: Path, capsys) -> None:
    import importlib.util

    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    rows = tmp_path / "variants.jsonl"
    argv = ["bench", "denoise", "--data", str(DATA), "--images", "house", "--size", "24", "--variants", "bm3d",
            "--rows", str(rows)]
    if importlib.util.find_spec("bm3d") is None:  # the optional extra: one line naming it
        assert main(argv) == 2 and "pip install 'linr[bm3d]'" in capsys.readouterr().err
        return
    assert main(argv) == 0
    (row,) = [json.loads(line) for line in rows.read_text().splitlines()]
    assert row["variant"] == "bm3d" and row["steps_run"] is None and 20 < row["psnr"] < 40
    capsys.readouterr()
    assert main(["bench", "denoise", "--table", "--rows", str(rows), "--variants", "bm3d"]) == 0
    assert f"| {row['psnr']:.2f} ({row['cpu_seconds']:.0f} s CPU) |" in capsys.readouterr().out  # CPU seconds where a row has them


def test_tiles_bench_keys_name_the_denoising_default_and_a_smoke_run_resumes(tmp_path: Path, capsys) -> None:
    from linr.bench.tiles import _key, parse_variant
    from linr.cli import main
    from linr.tasks import DEFAULT_PILOT_LR

    path = Path("set9/house.png")
    default = json.loads(_key("denoise", path, parse_variant("256:32"), None, None))
    named = json.loads(_key("denoise", path, parse_variant("256:32@128"), None, None))
    sr = json.loads(_key("sr", path, parse_variant("off"), None, None))
    assert default["defaults"] == f"tv:auto-except-rgb-above128-grouped@pilot7x64-lr{DEFAULT_PILOT_LR:g}-retry{_pilot_precision_tag()}" and named["defaults"] == "tv:auto-except-rgb-above128-grouped"
    assert "defaults" not in sr  # the default changed only for one noisy photo
    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    jobs = tmp_path / "tiles.jsonl"
    argv = ["bench", "tiles", "--data", str(DATA), "--images", "house", "--crop", "64", "--steps", "2",
            "--variants", "off,32:8@16", "--jobs", str(jobs), "--threads", "1"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in jobs.read_text().splitlines()]
    assert [r["variant"]["tile"] for r in rows] == ["off", "32:8"] and rows[1]["tile_steps"]
    assert main(argv) == 0 and len(jobs.read_text().splitlines()) == 2  # resumed, nothing refitted


def test_tiles_bench_tile_store_resumes_a_killed_rows_tiles_and_counts_their_seconds(tmp_path: Path) -> None:
    """A row's finished tiles kept under --tile-store are resumed by the next run (the same image)
    and their fit seconds counted in the row's; the folder is removed once the row is written."""
    from linr.bench.tiles import parse_variant, run_one
    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    variant, store = parse_variant("32:8@16"), tmp_path / "store"
    first = run_one("denoise", DATA / "set9" / "house.png", variant, crop=48, steps=2, device="cpu",
                    tile_store=store)
    kept = sorted(store.glob("tile_*.npy"))
    assert len(kept) == len(first["tile_steps"]) > 1 and "resumed_tiles" not in first  # kept for the caller
    again = run_one("denoise", DATA / "set9" / "house.png", variant, crop=48, steps=2, device="cpu",
                    tile_store=store)  # as after a kill before the row was written
    assert again["resumed_tiles"] == len(kept) and again["psnr_paper"] == pytest.approx(first["psnr_paper"], abs=1e-4)
    assert again["resumed_fit_s"] == pytest.approx(first["tile_fit_s"])  # the kept tiles' own fit seconds, read back
    assert again["tile_fit_s"] == pytest.approx(first["tile_fit_s"]) and again["last_run_s"] < again["seconds"]
    spread = run_one("denoise", DATA / "set9" / "house.png", variant, crop=48, steps=2, device="cpu",
                     workers=2)  # two worker processes: the same image
    assert spread["workers"] == 2 and spread["psnr_paper"] == first["psnr_paper"]
    assert spread["tile_steps"] == first["tile_steps"] and spread["tile_fit_s"] > 0
    whole = run_one("denoise", DATA / "set9" / "house.png", parse_variant("64"), crop=48, steps=2, device="cpu",
                    workers=2)  # one tile covers the image: fitted whole, here, not refused for its workers
    assert whole["tiling"] is None and "workers" not in whole
    jobs, stores = tmp_path / "tiles.jsonl", tmp_path / "stores"
    assert main(["bench", "tiles", "--data", str(DATA), "--images", "house", "--crop", "48", "--steps", "2",
                 "--variants", "32:8@16", "--jobs", str(jobs), "--threads", "1", "--tile-store", str(stores)]) == 0
    assert len(jobs.read_text().splitlines()) == 1 and list(stores.iterdir()) == []  # written, then removed


def test_tiles_bench_takes_images_in_the_order_given_and_refuses_unknown_names(capsys, tmp_path) -> None:
    from linr.bench.tiles import _case_images, _check_names
    from linr.cli import main
    from linr.errors import InputError

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    assert [p.stem for p in _case_images(DATA / "set5", ["woman", "bird"])] == ["woman", "bird"]
    assert [p.stem for p in _case_images(DATA / "inpaint", None)] == ["kate", "library", "vase"]
    # an image of another chosen case's folder is no error, and is not this case's
    _check_names(DATA, ["house"], ["sr", "denoise"])
    assert _case_images(DATA / "set5", ["house"]) == []
    with pytest.raises(InputError, match="no test image 'kate_mask'"):
        _check_names(DATA, ["kate_mask"], ["inpaint"])
    jobs = tmp_path / "rows" / "tiles.jsonl"
    assert main(["bench", "tiles", "--data", str(DATA), "--cases", "sr", "--images", "bird,nosuch",
                 "--steps", "1", "--jobs", str(jobs)]) == 2
    assert "no test image 'nosuch' in the chosen cases' folders (set5 under" in capsys.readouterr().err
    assert not jobs.parent.exists()  # refused before anything was made
    assert main(["bench", "tiles", "--data", str(DATA), "--images", " ", "--jobs", str(jobs)]) == 2
    assert "--images: give one or more image names" in capsys.readouterr().err


def test_ensemble_bench_keys_name_the_defaults_its_fits_follow(tmp_path: Path, capsys) -> None:
    from linr.cli import main
    from linr.tasks import DEFAULT_DENOISE_REFINE, default_prior_rule, pilot_tag

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    rows = tmp_path / "ensemble.jsonl"
    base = ["bench", "ensemble", "--data", str(DATA), "--images", "set9/house", "--crop", "16", "--steps", "2",
            "--threads", "1", "--rows", str(rows)]
    assert main(base) == 0 and main([*base, "--width", "8", "--depth", "2"]) == 0
    keys = [json.loads(json.loads(line)["key"]) for line in rows.read_text().splitlines()]
    defaults = f"{default_prior_rule()}-{DEFAULT_DENOISE_REFINE}"
    assert [k["defaults"] for k in keys] == [defaults + pilot_tag(), defaults]  # a named network: no pilot
    assert main(base) == 0 and len(rows.read_text().splitlines()) == 2  # resumed, not refitted


def test_denoise_table_shows_todays_default_and_marks_earlier_ones() -> None:
    from linr.bench.denoise import _key_variant, table

    today = _key_variant("default", {})

    def row(key: str, image: str, psnr: float) -> dict:
        return {"key": key, "image": image, "colour": "rgb", "size": "full", "sigma": 25.0, "variant": "default",
                "split": "report", "psnr": psnr, "seconds": 1.0}

    rows = [row(f"f16_rgb_sfull_n25_{today}@tiles-above384", "f16", 31.0),  # today's, listed first
            row("f16_rgb_sfull_n25_default-tv:auto-grouped@pilot7x64-lr0.001@tiles-above384", "f16", 30.0),
            row("peppers_rgb_sfull_n25_default-tv:auto-grouped@pilot7x64", "peppers", 29.0),
            row(f"peppers_rgb_sfull_n25_{today}-more", "peppers", 28.0)]  # a longer, other name
    shown = table({r["key"]: r for r in rows}, ["default"])
    assert "| f16 rgb whole, sigma 25 | 31.00 (1 s) |" in shown  # not the earlier row read after it
    assert "| peppers rgb whole, sigma 25 | 28.00* (1 s) |" in shown and f"`{today}`" in shown
    assert "*" not in table({rows[0]["key"]: rows[0]}, ["default"])


def test_default_stop_bench_records_the_curve_resumes_and_replays_fractions(tmp_path: Path, capsys) -> None:
    """The rows of ``linr bench default-stop`` on a small crop: the default's PSNR and step, an
    oracle no worse than any refined checkpoint, one curve point per checkpoint; a rerun adds no
    row; the table replays a fraction of the held-out minimum's step from the curve."""
    from linr import sure
    from linr.bench.default_stop import replay
    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    rows = tmp_path / "stop.jsonl"
    argv = ["bench", "default-stop", "house", "--data", str(DATA), "--size", "40", "--colour", "grey",
            "--budget", "20", "--every", "5", "--rows", str(rows)]
    assert main(argv) == 0
    (row,) = [json.loads(line) for line in rows.read_text().splitlines()]
    # the fixed fit runs the budget, or as many steps as the default ran if more
    assert row["steps_fitted"] == max(20, row["default_steps_run"]) and not row["retried"]
    assert [p[0] for p in row["curve"]] == list(range(5, row["steps_fitted"] + 1, 5))
    assert all(len(p) == 5 for p in row["curve"])
    assert row["oracle_psnr"] == pytest.approx(max(max(p[1], p[2]) for p in row["curve"]), abs=1e-4)
    # a 40-px photo: the default chooses by SURE among the checkpoints up to the steps it ran; the
    # held-out minimum it started from is the step fractions are replayed from
    assert row["stop"]["name"] == "sure" and f"-sure{sure.PROBE_SCALE:g}" in row["key"]
    assert 1 <= row["default_stop_step"] <= row["default_steps_run"]
    assert row["default_minimum_step"] == row["stop"]["sure"]["held_out_step"]
    assert main(argv) == 0 and len(rows.read_text().splitlines()) == 1  # resumed: nothing fitted again
    # --oracle-from: the default run again, the fixed fit's oracle and curve borrowed from the row
    again = tmp_path / "again.jsonl"
    assert main([*argv[:-1], str(again), "--oracle-from", str(rows)]) == 0
    (borrowed,) = [json.loads(line) for line in again.read_text().splitlines()]
    assert borrowed["curve"] == row["curve"] and borrowed["oracle_psnr"] == row["oracle_psnr"]
    assert borrowed["default_psnr"] == pytest.approx(row["default_psnr"], abs=1e-6)  # the same default, fitted again
    assert borrowed["oracle_from"] == row["commit"]
    capsys.readouterr()
    assert main(["bench", "default-stop", "--table", str(rows), "--at", "1", "0.5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith("| at 1 | at 0.5 |") and table[-1].startswith("| **stop: mean / worst (1)**")
    # the replay: the checkpoint nearest at x the minimum's step, none after it, the earlier on a tie
    synthetic = {"default_stop_step": 17, "curve": [[5, 1, 10.0], [10, 1, 20.0], [15, 1, 30.0], [20, 1, 40.0]]}
    assert replay(synthetic, 1.0) == (30.0, 15) and replay(synthetic, 0.9) == (30.0, 15)
    assert replay(synthetic, 0.4) == (10.0, 5) and replay(synthetic, 0.45) == (20.0, 10)  # 6.8, 7.65
    assert replay({**synthetic, "default_minimum_step": 20}, 0.375) == (10.0, 5)  # 7.5: a tie, the earlier
    assert main(["bench", "default-stop", "--table", str(tmp_path / "none.jsonl")]) == 2
    assert "no rows file" in capsys.readouterr().err
    assert main(["bench", "default-stop", "--table", str(rows), "--at", "1.5"]) == 2
    assert "must be in (0, 1]" in capsys.readouterr().err
    assert main(["bench", "default-stop", "house", "--table", str(rows)]) == 2
    assert "not both" in capsys.readouterr().err
    assert replay({**synthetic, "default_minimum_step": 40}, 1.0) is None  # past the curve's end: not clamped
    own = {**synthetic, "default_psnr": 9.0}  # the default's own image: a raw iterate, or no checkpoint before
    assert replay({**own, "stop": {"returned": "raw"}}, 0.5) == (9.0, 17)
    assert replay({**own, "default_stop_step": 3}, 0.5) == (9.0, 3)
    assert main(["bench", "default-stop", str(tmp_path / "photo.png"), "--data", str(DATA), "--rows", str(rows)]) == 2
    assert "without .png" in capsys.readouterr().err  # a path is not a test image's name


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_default_stop_reuses_only_oracles_of_todays_pilot_precision_included(monkeypatch, precision) -> None:
    """A row's fixed fit is reused only where its key names today's pilot: on a CPU whose pilot is
    float32 a ``-bf16`` pilot's row is not taken for one (its tag starts with float32's)."""
    import linr.tasks
    from linr.bench.default_stop import fitted_by_todays_pilot

    monkeypatch.setattr(linr.tasks, "pilot_precision", lambda device: precision)
    float32_key, bf16_key = "baby_rgb_s64_n25_b400_e5@pilot7x64-lr0.001-retry", "baby_rgb_s64_n25_b400_e5@pilot7x64-lr0.001-retry-bf16"
    today, other = (float32_key, bf16_key) if precision == "float32" else (bf16_key, float32_key)
    assert fitted_by_todays_pilot(today) and fitted_by_todays_pilot(today + "-sure0.3c")
    assert not fitted_by_todays_pilot(other + "-sure0.3c")
    assert not fitted_by_todays_pilot("baby_rgb_s64_n25_b400_e5@pilot7x256-sure0.3c")
    assert fitted_by_todays_pilot(today + "-at0.9-sure0.3c")
    monkeypatch.setattr(linr.tasks, "DEFAULT_PILOT_LR", linr.tasks.PRESETS[linr.tasks.DEFAULT_PRESET].lr)
    paper_rate = "baby_rgb_s64_n25_b400_e5@pilot7x64" + ("" if precision == "float32" else "-bf16")
    assert fitted_by_todays_pilot(paper_rate + "-sure0.3c")  # the pilot at the paper's rate: no -lr part
    assert not fitted_by_todays_pilot("baby_rgb_s64_n25_b400_e5@pilot7x64-lr0.001-retry-sure0.3c")


def test_denoise_bench_runs_dip_at_its_recipe_with_its_oracle(tmp_path: Path, capsys) -> None:
    """The ``dip`` variant: Deep Image Prior with its recipe's settings recorded (a smoke budget
    here), the returned average's PSNR and its best step along the fit."""
    from linr.baselines.dip import DIPConfig
    from linr.bench.denoise import variant_options
    from linr.cli import main

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    assert variant_options("dip") == {}
    rows = tmp_path / "dip.jsonl"
    assert main(["bench", "denoise", "--data", str(DATA), "--images", "house", "--size", "24", "--steps", "4",
                 "--variants", "dip", "--rows", str(rows)]) == 0
    (row,) = [json.loads(line) for line in rows.read_text().splitlines()]
    assert row["variant"] == "dip" and row["key"].endswith("_dip_steps4") and row["steps_run"] == 4
    assert row["dip"]["channels"] == DIPConfig().channels == 128 and row["dip"]["steps"] == 4
    assert row["dip"]["average"] == 0.99 and DIPConfig().steps == 3000
    assert 1 <= row["peak_step"] <= 4 and row["peak_psnr_unclipped"] >= row["psnr_unclipped"] - 1e-6


def test_variants_of_the_defaults_are_columns_beside_them_and_skipped_where_they_cannot_run(tmp_path: Path) -> None:
    """``linr bench --variants``: a column per variant after 'LINR (default)', fitted with its own
    settings and keyed apart; the averages give each one's difference from the default; a variant
    the table's observations cannot take is skipped with the reason; bad ones are refused first."""
    from linr.bench.report import markdown_summary
    from linr.bench.spec import LINR_DEFAULT, with_variants

    table2 = find_tables(["2"])[0]
    wide = with_variants(table2, ["refine=none", "omega_0=20"])
    labels = [m.label for m in wide.methods]
    at = labels.index("LINR (default)")
    assert labels[at + 1:at + 3] == ["LINR (default, refine=none)", "LINR (default, omega_0=20)"]
    assert len(labels) == len(table2.methods) + 2
    assert with_variants(find_tables(["8"])[0], ["refine=none"]) == find_tables(["8"])[0]  # no default column
    with pytest.raises(InputError, match="unknown variant 'foo=1'"):
        run_bench(profile="quick", tables=["2"], data=DATA, out=tmp_path / "bad", variants=["foo=1"],
                  device="cpu", plots=False, log=lambda s: None)
    with pytest.raises(InputError, match="none of the chosen tables has a 'LINR \\(default\\)' column"):
        run_bench(profile="quick", tables=["8"], data=DATA, out=tmp_path / "bad", variants=["refine=none"],
                  device="cpu", plots=False, log=lambda s: None)
    assert not (tmp_path / "bad" / "jobs.jsonl").exists()  # refused before any fit
    if not (DATA / "set5" / "butterfly.png").exists():
        pytest.skip("test data not found")
    out = tmp_path / "bench"
    run_bench(profile="quick", tables=["2"], data=DATA, out=out, images=["butterfly"], crop=32, steps=2,
              methods=["LINR (default)"], variants=["refine=none", "refine=grouped-fill"], device="cpu",
              plots=False, log=lambda s: None)
    rows = {r["method"]: r for r in _rows(out)}
    assert set(rows) == {"LINR (default)", "LINR (default, refine=none)", "LINR (default, refine=grouped-fill)"}
    default, plain = rows["LINR (default)"], rows["LINR (default, refine=none)"]
    assert default["job"] != plain["job"] and plain["status"] == "ok"
    jobs = {j["key"]: j for j in map(json.loads, (out / "jobs.jsonl").read_text().splitlines())}
    assert jobs[default["job"]]["settings"]["refine"]["name"] == "grouped-views-examples"
    assert jobs[plain["job"]]["settings"]["refine"] is None
    assert plain["total_s"] is not None and plain["total_s"] >= plain["fit_s"]
    skipped = rows["LINR (default, refine=grouped-fill)"]
    assert skipped["status"] == "skipped" and skipped["note"].startswith("not applicable: refinement 'grouped-fill'")
    summary = {e["method"]: e for e in json.loads((out / "summary.json").read_text())["averages"]}
    assert summary["LINR (default, refine=none)"]["vs_default_psnr"] == pytest.approx(
        plain["psnr_paper"] - default["psnr_paper"])
    assert summary["LINR (default, refine=none)"]["vs_default_time"] == pytest.approx(
        plain["total_s"] / default["total_s"])
    assert "vs_default_psnr" not in summary[LINR_DEFAULT.label]
    assert summary["LINR (default, refine=grouped-fill)"]["paper_basis"] == "not run: not applicable to these inputs"
    lines = markdown_summary(list(summary.values()))
    assert lines[0].endswith("| vs LINR (default) | time vs LINR (default) (whole restore, one machine) |")
    assert f"| {plain['psnr_paper'] - default['psnr_paper']:+.2f} |" in lines[3]


def test_a_jobs_file_that_holds_no_jobs_is_refused_in_one_line(tmp_path: Path) -> None:
    rows = tmp_path / "results.jsonl"
    rows.write_text(json.dumps({"table": "table1_denoise_set9", "method": "LINR"}) + "\n")
    with pytest.raises(InputError, match="not a file of finished fits"):
        run_bench(profile="quick", tables=["1"], data=DATA, out=tmp_path / "out", jobs=rows,
                  device="cpu", plots=False, log=lambda s: None)


def test_a_fit_whose_stop_is_the_sure_pick_is_keyed_by_the_picks_settings(tmp_path: Path, monkeypatch) -> None:
    """The SURE pick's settings change what a fit returns without changing its stop rule's
    description: the job key names them, so a fit made under other ones is fitted again."""
    from linr import sure
    from linr.bench.runner import BenchRun
    from linr.bench.spec import LINR_DEFAULT

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    profile = PROFILES["quick"].with_overrides(crop=32, steps=None, images=("house",))
    run = BenchRun(profile, data=DATA, out=tmp_path, device="cpu", plots=False)
    table = find_tables(["1"])[0]
    scene = next(iter(run.scenes(table)))
    _, _, spec, key = run._keyed(table, scene, LINR_DEFAULT)
    assert spec["stop"]["name"] == "sure" and spec["sure"] == sure.pick_settings()
    monkeypatch.setattr(sure, "SCORE_PATIENCE", 2)
    assert run._keyed(table, scene, LINR_DEFAULT)[3] != key


def test_a_variants_own_settings_key_it_apart_and_a_smoke_budget_wins_over_its_steps(tmp_path: Path) -> None:
    """A variant whose fit resolves to the paper column's but for a prior is keyed apart from it (the
    two columns must not serve each other's fits); ``--steps`` (a smoke budget) wins over a
    variant's ``steps=`` as in ``linr bench denoise``; a ``--jobs`` file that holds no jobs (a CSV)
    is refused before anything is appended to it."""
    from linr.bench.runner import BenchRun
    from linr.bench.spec import LINR, Method

    if not (DATA / "set5" / "butterfly.png").exists():
        pytest.skip("test data not found")
    table = find_tables(["2"])[0]
    run = BenchRun(PROFILES["quick"].with_overrides(crop=32, images=("butterfly",)), data=DATA,
                   out=tmp_path / "a", device="cpu", plots=False)
    scene = next(iter(run.scenes(table)))
    prior = Method("LINR (default, refine=none,stop=fixed,prior=tv:0.05)", "linr_default",
                   variant="refine=none,stop=fixed,prior=tv:0.05")
    plain = Method("LINR (default, refine=none,stop=fixed)", "linr_default", variant="refine=none,stop=fixed")
    keys = {m.label: run._keyed(table, scene, m)[3] for m in (LINR, prior, plain)}
    assert keys[prior.label] != keys[LINR.label]
    smoke = BenchRun(PROFILES["quick"].with_overrides(crop=32, steps=2), data=DATA, out=tmp_path / "b",
                     device="cpu", plots=False)
    options = smoke._linr_options(Method("v", "linr_default", variant="steps=6,refine=none"), table.corruption)
    assert options["steps"] == 2 and options["stop"] == "auto" and options["refine"] == "none"
    stopped = smoke._linr_options(Method("v", "linr_default", variant="stop=fixed"), table.corruption)
    assert stopped["stop"] == "fixed"  # the variant's own rule kept
    csv_file = tmp_path / "results.csv"
    csv_file.write_text("table,method\n1,LINR\n")
    for fresh in (False, True):
        with pytest.raises(InputError, match="not a file of finished fits"):
            run_bench(profile="quick", tables=["2"], data=DATA, out=tmp_path / "c", jobs=csv_file,
                      resume=not fresh, device="cpu", plots=False, log=lambda s: None)
    assert csv_file.read_text() == "table,method\n1,LINR\n"


def test_a_crop_smaller_than_the_blur_kernel_is_refused_before_any_fit(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--crop 24: table 4's blur kernel is 25x25 px"):
        run_bench(profile="quick", tables=["4"], data=DATA, out=tmp_path / "out", crop=24, steps=2,
                  device="cpu", plots=False, log=lambda s: None)
    assert not (tmp_path / "out" / "jobs.jsonl").exists()


def test_a_probes_network_variant_reads_width_rate_steps_omega_and_precision():
    from linr.bench.common import network_variant
    from linr.models import ModelConfig

    assert network_variant("w64", omega_0=30.0, lr=1e-3, steps=500) == {
        "lr": 1e-3, "steps": 500, "model": ModelConfig(width=64, omega_0=30.0)}
    assert network_variant("w128:lr1e-4:s300:o15:bf16", omega_0=30.0, lr=1e-3) == {
        "lr": 1e-4, "steps": 300, "precision": "bf16", "model": ModelConfig(width=128, omega_0=15.0)}
    assert network_variant("w64", omega_0=30.0) == {"model": ModelConfig(width=64, omega_0=30.0)}  # the default's rate
    for bad in ("64", "w64:x2", "wide"):
        with pytest.raises(SystemExit):
            network_variant(bad, omega_0=30.0)


def test_a_run_of_other_tables_into_the_same_folder_says_what_its_report_leaves_out(tmp_path: Path) -> None:
    """A researcher ran Table 1, then Table 3 into one --out: report.md held Table 3 alone, unsaid.
    The run now says (log and report) which earlier tables its outputs leave out and the command
    that puts them all in one report, whose finished fits resume."""
    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    out, said = tmp_path / "bench", []
    kwargs = dict(profile="quick", data=DATA, out=out, crop=24, steps=2, device="cpu", log=said.append)
    run_bench(tables=["1"], methods=["input"], images=["house"], **kwargs)
    assert not any("leave out" in line for line in said)
    run_bench(tables=["4"], methods=["input"], images=["leaves"], **{**kwargs, "crop": 32})
    note = next(line for line in said if "leave out" in line)
    assert "held table(s) 1 of an earlier run" in note and "--tables 1 4 puts them all in one report" in note
    assert "Note: " + note.removeprefix("note: ") in (out / "report.md").read_text()
    said.clear()
    run_bench(tables=["1", "4"], methods=["input"], images=["house", "leaves"], **{**kwargs, "crop": 32})
    assert not any("leave out" in line for line in said)
    from linr.bench.spec import find_tables
    from linr.bench.tables import _earlier_tables

    summary = out / "summary.json"
    for malformed in ('{"profile": "quick", "averages": null}', '{"profile": "quick", "averages": [{"table": ["x"]}]}',
                      '[1, 2]', "not json"):
        summary.write_text(malformed)  # never a traceback before the run
        assert _earlier_tables(out, "quick", find_tables(["4"])) is None
    summary.write_text(json.dumps({"profile": "paper", "averages": [{"table": find_tables(["1"])[0].key}]}))
    assert "with the 'paper' profile, whose report.md" in _earlier_tables(out, "quick", find_tables(["4"]))


def test_a_blurred_photo_fitted_on_another_scale_or_without_its_defects_is_keyed_apart(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """Table 4's crops are fitted on their own scale with every pixel: their keys as before. A
    photo whose defects are left out (or whose scale is widened) is fitted otherwise: keyed apart."""
    import numpy as np

    from linr import tasks
    from linr.bench.runner import BenchRun
    from linr.bench.spec import LINR_DEFAULT
    from linr.defects import Defects

    if not (DATA / "deblur" / "leaves.png").exists():
        pytest.skip("test data not found")
    profile = PROFILES["quick"].with_overrides(crop=32, steps=None, images=("leaves",))
    run = BenchRun(profile, data=DATA, out=tmp_path, device="cpu", plots=False)
    table = find_tables(["4"])[0]
    scene = next(iter(run.scenes(table)))
    _, _, spec, key = run._keyed(table, scene, LINR_DEFAULT)
    assert not {"headroom", "defects", "defect_scale"} & set(spec)
    one = np.zeros((32, 32), bool)
    one[9, 9] = True
    monkeypatch.setattr(tasks, "defects_of", lambda *a, **k: Defects(pixels=one))
    spec = run._keyed(table, scene, LINR_DEFAULT)[2]
    assert spec["defects"] == 1 and run._keyed(table, scene, LINR_DEFAULT)[3] != key
