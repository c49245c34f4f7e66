"""Pilot width probe (eighteenth session): the default restore of a 256-px centre crop of a set9 tune
image (sigma 25, the bench's noise, seed 0) with the pilot network at width W (SIREN 7xW, lr 1e-3,
budget 2000, the automatic stop, tv:auto, refined by grouped); rows: PSNR (standard convention)
of the refined image and of the fit, steps, CPU seconds of one thread (process time, beside two
or three other runs). Rows as run: benchmarks/pilot_width.jsonl.

    python benchmarks/pilot_width.py benchmarks/pilot_width.jsonl 256 25 64,32 baboon house kodim01
"""
import sys, json, time, numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
import linr
from linr.models import ModelConfig
from linr.bench.averaging import clean_crop, observations_for
from skimage.metrics import peak_signal_noise_ratio as psnr
out = Path(sys.argv[1]); size = None if sys.argv[2] == 'full' else int(sys.argv[2]); sigma=float(sys.argv[3])
widths = [int(w) for w in sys.argv[4].split(',')]
names = sys.argv[5:]
done = {json.loads(l)['key'] for l in out.read_text().splitlines()} if out.exists() else set()
for name in names:
    clean = clean_crop(Path(__file__).resolve().parents[1].parent / 'shared' / 'data', 'set9', name, 'rgb', size)
    obs = observations_for('denoise', clean, sigma=sigma, seed=0)
    for w in widths:
        key = f"{name}_{sys.argv[2]}_n{sigma:g}_w{w}"
        if key in done: continue
        t = time.process_time()
        r = linr.restore(obs, model=ModelConfig(width=w), lr=1e-3, steps=2000, seed=0, progress=False,
                         tile=256 if size is None and max(clean.shape[:2]) > 384 else 'auto')
        cpu = time.process_time() - t
        row = dict(key=key, image=name, size=sys.argv[2], sigma=sigma, width=w, cpu_s=round(cpu,1),
                   psnr=round(float(psnr(clean, np.clip(r.image,0,1), data_range=1)),3),
                   psnr_fit=round(float(psnr(clean, np.clip(r.fitted_image,0,1), data_range=1)),3) if r.fitted_image is not None else None,
                   steps=r.steps_run, refine=(r.settings.get('refine') or {}).get('name'), prior=r.settings.get('prior_used'))
        with out.open('a') as f: f.write(json.dumps(row)+'\n')
        print(json.dumps(row), flush=True)
