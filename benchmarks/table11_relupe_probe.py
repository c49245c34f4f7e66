"""Table 11's ReLU-PE at full size with the encoding's octaves set from the image side as the SIREN
code base sets them (Nyquist: floor(log2(side / 4))): x4 lanczos2 as Table 2, the paper preset
(500 steps), PSNR in the paper's convention; one row per image appended to
benchmarks/table11_relupe_s37.jsonl (images already there are skipped). The plain loop: 20-60
minutes per image on one thread here.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/table11_relupe_probe.py butterfly head woman bird baby
"""
import json
import math
import os
import sys
import time

from linr.images import read_image
from linr.simulate import crop_to_multiple, lanczos_downscale
from linr.kinds import lowres
from linr.tasks import restore
from linr.models import ModelConfig
from linr.metrics import psnr
out = "benchmarks/table11_relupe_s37.jsonl"
DATA = os.environ.get("LINR_DATA", "../shared/data")
done = set()
try:
    done = {(json.loads(line)["image"], json.loads(line)["octaves"]) for line in open(out)
            if json.loads(line).get("probe") == "full_nyquist"}
except FileNotFoundError:
    pass
for name in sys.argv[1:]:
    clean, _ = read_image(f"{DATA}/set5/{name}.png")
    clean = crop_to_multiple(clean, 4)
    side = min(clean.shape[:2])
    k = int(math.floor(math.log2(side / 4)))
    if (name, k) in done:
        continue
    lr = lanczos_downscale(clean, 4)
    t = time.time()
    r = restore([lowres(lr, factor=4)], preset="paper", model=ModelConfig(name="relu_pe", pe_frequencies=k),
                device="cpu", progress=False, refine="none", tile="off")
    row = {"probe": "full_nyquist", "image": name, "shape": list(clean.shape), "octaves": k, "steps": r.steps_run,
           "psnr_paper": round(float(psnr(clean, r.image)), 2), "s": round(time.time() - t)}
    print(json.dumps(row), flush=True)
    open(out, "a").write(json.dumps(row) + "\n")
