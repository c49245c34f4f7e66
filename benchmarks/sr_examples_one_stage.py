"""#15 SR x4: ``grouped-views-examples`` with its network learnt in one x4 stage (as in the
thirty-eighth session) on the same fits as ``benchmarks/sr_examples.py``'s rows, whose network
since the thirty-ninth session learns in two x2 stages (:func:`linr.internal.stage_factors`): what
the stages alone add.

For each image: the default fit of its x4 view from the cache folder (``--cache DIR``, shared with
``sr_examples.py`` and ``sr_views.py``; fitted when missing), the view upscaled by one network
learnt at x4 from the view's own copies (projected onto the view), and the refiner's image with
that network: PSNR in the paper's convention (RGB, unclipped, data range 1) and the standard
one, wall seconds (one thread). One row per image appended to ROWS (resumable).

    .venv/bin/python benchmarks/sr_examples_one_stage.py set5/woman --rows benchmarks/sr_examples_one_stage.jsonl \\
        --cache /tmp/sr_cache

``--table ROWS --beside ROWS[,ROWS]`` prints a rows file beside ``sr_examples.py``'s as a markdown table
(the images whose fit is the same in both).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sr_views import fitted_row, refined_row  # noqa: E402


def one_stage(factor: int) -> list[int]:
    """The thirty-eighth session's learning: the whole factor at once."""
    return [factor]


def run(spec: str, crop: int | None, data: Path, cache: Path | None) -> dict:
    import linr.internal
    from linr.projection import project_onto_views

    obs, fit, scores, row = fitted_row(spec, crop, data, cache)
    staged, linr.internal.stage_factors = linr.internal.stage_factors, one_stage
    try:
        t0 = time.perf_counter()
        learnt, info = linr.internal.learn_from_own_copies(obs[0].image, obs[0].operator)
        row["learnt alone, one stage"] = {**scores(project_onto_views(learnt, obs)[0]),
                                          "seconds": round(time.perf_counter() - t0, 1), "report": info}
        row = refined_row(row, ("grouped-views-examples",), fit, obs, scores)
    finally:
        linr.internal.stage_factors = staged
    row["grouped-views-examples, one stage"] = row.pop("grouped-views-examples")
    return row


def table(rows: list[dict], beside: list[dict]) -> str:
    staged, gains = {(r["image"], r["crop"]): r for r in beside}, []
    out = ["| image | fit | learnt alone: one stage, two x2 stages | grouped-views | grouped-views-examples: one stage, "
           "two x2 stages | the stages' gain |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = staged.get((r["image"], r["crop"]))
        if s is None or abs(s["fit"]["paper"] - r["fit"]["paper"]) > 1e-6:  # not the same fit: not comparable
            continue
        one, two = r["grouped-views-examples, one stage"]["paper"], s["grouped-views-examples"]["paper"]
        name = f"{r['image']} ({r['crop']}-px crop)" if r.get("crop") else r["image"]
        out.append(f"| {name} | {r['fit']['paper']:.2f} | {r['learnt alone, one stage']['paper']:.2f}, "
                   f"{s['learnt alone']['paper']:.2f} | {s['grouped-views']['paper']:.2f} | {one:.2f}, {two:.2f} | "
                   f"{two - one:+.2f} |")
        gains.append(two - one)
    if gains:
        out.append(f"| mean gain ({len(gains)}) | | | | | {sum(gains) / len(gains):+.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--table" in argv:
        rows = Path(argv[argv.index("--table") + 1])
        beside = [Path(name) for name in argv[argv.index("--beside") + 1].split(",")]
        load = lambda p: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]  # noqa: E731
        print(table(load(rows), [row for path in beside for row in load(path)]))
        return 0
    from linr.bench.common import refine_probe_main

    return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data (set5/woman, set9/house)", run,
                             lambda rows: "")


if __name__ == "__main__":
    sys.exit(main())
