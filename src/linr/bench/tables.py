"""``linr bench``: reproduce the paper's tables (1-13; 14 with real-noise pairs) beside baselines.

Writes into ``--out``: ``results.jsonl`` and ``results.csv`` (one row per table, image and
method), ``jobs.jsonl`` (finished fits, for resuming), ``report.md`` (our numbers beside the
paper's), ``summary.json`` (per-table averages), ``images/`` (restored and corrupted images) and
``plots/`` (PSNR per step).

Importable: ``linr.bench.tables.run_bench(profile="quick", tables=["1"], out="bench_out")``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["register", "run_bench"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the table options to the ``linr bench`` parser itself (its default action)."""
    from .spec import PROFILES  # light: dataclasses only

    g = parser.add_argument_group("paper tables (the default part of linr bench)")
    g.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="quick: 64-px crops, fewer steps, CPU-friendly (default); paper: full "
                        "images and the paper's steps (meant for a GPU)")
    g.add_argument("--tables", nargs="+", metavar="N",
                   help="tables to run, by number (1-14) or key (default: all)")
    g.add_argument("--data", type=Path, metavar="DIR",
                   help="test-image folder (default: $LINR_DATA, else ../shared/data); Table 14 "
                        "runs when DIR (or DIR/polyu) holds NAME_real / NAME_mean pairs")
    g.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: bench_out/PROFILE)")
    g.add_argument("--methods", nargs="+", metavar="M",
                   help="only these methods, by column label or kind (e.g. LINR DIP bicubic); 'LINR (default)' "
                        "brings its --variants columns too")
    g.add_argument("--exclude", nargs="+", metavar="M",
                   help="leave out these methods, by column label or kind (e.g. dip dip_recipe)")
    g.add_argument("--variants", nargs="+", metavar="SETTINGS",
                   help="a column per variant of linr's defaults after each 'LINR (default)' column (tables "
                        "1-7 and 12-14), named 'LINR (default, SETTINGS)': settings joined by commas, such as "
                        "refine=none, refine=grouped-views, prior=none, stop=RULE, lr=X, steps=N, tile=SPEC, precision=NAME or "
                        "preset=paper (those of linr bench denoise's variants; omega_0=W, width=N, depth=N set "
                        "the paper's SIREN with that change in place of the default's network, as there); a "
                        "variant a table's inputs cannot take is skipped with the reason; the averages give "
                        "each its difference from 'LINR (default)' and its time")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    g.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's)")
    g.add_argument("--jobs", type=Path, metavar="FILE.jsonl",
                   help="record finished fits in FILE and resume from it (default OUT/jobs.jsonl); "
                        "e.g. a file committed to the repository, so another machine resumes")
    g.add_argument("--fresh", action="store_true",
                   help="ignore finished fits recorded in OUT/jobs.jsonl (default: resume)")
    g.add_argument("--no-plots", action="store_true", help="do not draw PSNR-per-step plots")
    smoke = parser.add_argument_group("smoke-run overrides (recorded as deviations in the report)")
    smoke.add_argument("--crop", type=int, metavar="PX", help="centre-crop every image to PX x PX")
    smoke.add_argument("--steps", type=int, metavar="N", help="every iterative method runs N steps")
    smoke.add_argument("--images", nargs="+", metavar="NAME", help="only these image names")
    smoke.add_argument("--seed", type=int, metavar="N",
                       help="every fit's seed (initialisation; the profile's is 0), to report a spread over seeds: "
                            "the corruptions' seeds stay the same")
    parser.set_defaults(func=cmd_tables)


def cmd_tables(args: argparse.Namespace) -> int:
    if getattr(args, "bench_command", None):
        return 0  # a sub-command (speed, stopping) has its own func
    summary = run_bench(
        profile=args.profile, tables=args.tables, data=args.data, out=args.out,
        methods=args.methods, exclude=args.exclude, variants=args.variants, device=args.device, threads=args.threads, resume=not args.fresh,
        plots=not args.no_plots, crop=args.crop, steps=args.steps, images=args.images, seed=args.seed,
        jobs=args.jobs, command="linr " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    out = Path(summary["out"])
    print(f"report: {out / 'report.md'}  rows: {summary['rows']}  fresh fits: {summary['fresh']}")
    return 0


def run_bench(
    *,
    profile: str = "quick",
    tables: list[str] | None = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
    methods: list[str] | None = None,
    exclude: list[str] | None = None,
    variants: list[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    resume: bool = True,
    plots: bool = True,
    crop: int | None = None,
    steps: int | None = None,
    images: list[str] | None = None,
    seed: int | None = None,
    jobs: str | Path | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the chosen tables and write every output; returns a small summary dict. ``variants``:
    settings of a column each beside ``LINR (default)`` (:func:`linr.bench.spec.with_variants`)."""
    from ..errors import InputError
    from .spec import LINR_DEFAULT, PROFILES, find_tables, with_variants

    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    for name, value in (("crop", crop), ("steps", steps), ("threads", threads)):
        if value is not None and value < 1:
            raise InputError(f"--{name} must be a positive integer, got {value}")
    chosen = find_tables(tables)
    if crop is not None:  # a crop the corruption cannot be made on: said now, not as a traceback mid-run
        from .spec import BLUR

        blurred = [t.number for t in chosen if "blurred" in t.corruption.kinds]
        if blurred and crop < BLUR[0]:
            raise InputError(f"--crop {crop}: table {blurred[0]}'s blur kernel is {BLUR[0]}x{BLUR[0]} px, so its "
                             f"crops need at least {BLUR[0]} px (or leave table {blurred[0]} out with --tables)")
    if variants:
        from .common import restore_options

        for variant in variants:  # a bad one now, not after hours of fits
            restore_options(variant)
        if len(set(variants)) < len(variants):
            raise InputError("--variants: a variant is given twice")
        if not any(LINR_DEFAULT in t.methods for t in chosen):
            raise InputError(f"--variants: none of the chosen tables has a '{LINR_DEFAULT.label}' column "
                             "(tables 8-11 compare the paper's settings only)")
        chosen = [with_variants(t, variants) for t in chosen]
    from .spec import TABLES

    _check_methods(methods, chosen, "unknown method(s) {} for the chosen tables")
    _check_methods(exclude, TABLES, "--exclude: unknown method(s) {}")
    if images and all(table.images for table in chosen):  # Table 14 names its own pairs: not checked
        names = sorted({Path(p).stem for table in chosen for p in table.images})
        unknown = [n for n in images if n not in names]
        if unknown:
            raise InputError(f"--images: {', '.join(unknown)} not in the chosen tables' images "
                             f"({', '.join(names)})")
    prof = PROFILES[profile]
    if crop is not None or steps is not None or images is not None:
        prof = prof.with_overrides(crop=crop, steps=steps, images=tuple(images) if images else None)
    if seed is not None and seed != prof.seed:
        prof = dataclasses.replace(prof, fit_seed=seed, deviations=prof.deviations + (
            f"--seed {seed}: every fit's seed (initialisation; the profile's: {PROFILES[profile].seed}); the "
            "corruptions' seeds unchanged",))
    recipe_run = any(m.kind == "dip_recipe" and (not methods or {m.kind, m.label.lower()} & {n.lower() for n in methods})
                     and not (exclude and {m.kind, m.label.lower()} & {n.lower() for n in exclude})
                     for t in chosen for m in t.methods)
    if steps is not None and recipe_run and not (methods and any(m.lower() in ("dip_recipe", "dip (recipe)")
                                                                for m in methods)):
        # its steps are the DIP column's then, and so its settings: the same fit twice (a researcher's trial)
        exclude = list(exclude or []) + ["dip_recipe"]
        prof = dataclasses.replace(prof, deviations=prof.deviations + (
            "'DIP (recipe)' left out: with --steps it is the 'DIP' column's fit (the same steps and settings)",))
    from . import data_dir as find_data
    from .runner import BenchRun, ROW_FIELDS

    data_dir = find_data(data)
    out_dir = Path(out) if out is not None else Path("bench_out") / prof.name
    earlier = _earlier_tables(out_dir, prof.name, chosen)
    if earlier:
        log(f"note: {earlier}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    run = BenchRun(prof, data=data_dir, out=out_dir, device=device, methods=methods, exclude=exclude,
                   resume=resume, plots=plots, log=log, command=command,
                   jobs=Path(jobs) if jobs is not None else None)
    fresh = 0
    plot_paths: dict[str, str | None] = {}
    plot_note = None
    for table in chosen:
        before = len(run.jobs)
        run.run_table(table)
        fresh += len(run.jobs) - before
        if plots:
            plot_paths[table.key], note = _plot(run, table)
            plot_note = plot_note or note
        _write_outputs(run, chosen, plot_paths, plot_note, ROW_FIELDS, earlier)  # after every table
    return {"out": str(out_dir), "rows": len(run.rows), "fresh": fresh, "skipped": run.skipped}


def _check_methods(names: list[str] | None, tables: Any, message: str) -> None:
    """Every name a column label or kind of ``tables``, else a one-line error listing them."""
    from ..errors import InputError

    known = {n.lower() for t in tables for m in t.methods for n in (m.label, m.kind)}
    unknown = [m for m in names or () if m.lower() not in known]
    if unknown:
        raise InputError(message.format(", ".join(unknown)) + f"; choose from {', '.join(sorted(known))}")


def _plot(run: Any, table: Any) -> tuple[str | None, str | None]:
    from .report import plot_curves

    curves = run.curves(table)
    if not curves:
        return None, None
    path = run.out / "plots" / f"{table.key}.png"
    made = plot_curves(path, f"Table {table.number}: PSNR (RGB, unclipped) per step", curves)
    if made is None:
        return None, "PSNR-per-step plots skipped: matplotlib is not installed (pip install 'linr[plot]')."
    return str(path.relative_to(run.out)), None


def _earlier_tables(out: Path, profile: str, chosen: list[Any]) -> str | None:
    """What the report in ``out`` will leave out of an earlier run into it: its tables not among
    ``chosen``, whose rows this run's report, CSV and summary replace (a researcher's trial lost
    Table 1's report to a later run of Table 2), with how to have them all (of another profile
    than ``profile``: that its outputs are replaced). None when there was no earlier run, it had no
    other table, or its summary.json is not one this command wrote."""
    from .spec import TABLES

    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    averages = summary.get("averages") if isinstance(summary, dict) else None
    if not isinstance(averages, list):
        return None  # not a summary this command wrote
    keys = {entry.get("table") for entry in averages if isinstance(entry, dict) and isinstance(entry.get("table"), str)}
    ran = {t.key for t in chosen}
    left = [t for t in TABLES if t.key in keys and t.key not in ran]
    if not left:
        return None
    numbers = " ".join(str(t.number) for t in left)
    if summary.get("profile") != profile:
        return (f"{out} held table(s) {numbers} of an earlier run with the {summary.get('profile')!r} profile, whose "
                f"report.md, results.csv and summary.json this run replaces: give that run's --out of its own")
    every = " ".join(str(t.number) for t in TABLES if t.key in keys | ran)
    return (f"{out} held table(s) {numbers} of an earlier run, which this run's report.md, results.csv and "
            f"summary.json leave out: --tables {every} puts them all in one report (finished fits resume "
            "from jobs.jsonl)")


def _write_outputs(run: Any, tables: list[Any], plots: dict[str, str | None],
                   plot_note: str | None, fields: tuple[str, ...], earlier: str | None = None) -> None:
    from .report import summarise, write_csv, write_report

    summary = summarise(run.rows, run.paper)
    write_csv(run.out / "results.csv", run.rows, fields)
    (run.out / "summary.json").write_text(json.dumps(
        {"profile": run.profile.name, "machine": run.machine(), "averages": summary,
         "skipped": run.skipped}, indent=1))
    write_report(run.out / "report.md", profile=run.profile, tables=tables, rows=run.rows,
                 summary=summary, machine=run.machine(), command=run.command,
                 skipped=run.skipped, plots=plots, plot_note=plot_note, jobs=run.jobs, earlier=earlier)
