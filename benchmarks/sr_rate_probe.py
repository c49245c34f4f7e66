"""SR learning-rate probe (eighteenth session): the paper preset (SIREN 7x256, fixed steps) on a
centre crop of a set5 image, x FACTOR Lanczos low-res, at each learning rate for 1000 steps;
prints the PSNR every 10 steps (standard convention, against the crop). Output as run:
benchmarks/sr_rate_probe.txt.

    python benchmarks/sr_rate_probe.py bird 128 4 1e-4 3e-4
"""
import sys, json, time, numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from PIL import Image
import linr
from linr.kinds import lowres
from linr.simulate import lanczos_downscale
name, size, factor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
img = np.asarray(Image.open(Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'set5' / f'{name}.png').convert('RGB'), dtype=np.float64)/255
h,w=img.shape[:2]; t,l=(h-size)//2,(w-size)//2
img=img[t:t+size,l:l+size]
lo = lanczos_downscale(img, factor)
for lr in [float(a) for a in sys.argv[4:]]:
    t0=time.process_time()
    r = linr.restore([lowres(lo, factor=factor)], preset='paper', lr=lr, steps=1000, reference=img, progress=False, eval_every=10)
    c = r.history.get('psnr')
    c = [x for x in c if x==x] if c is not None else []
    steps = r.history.get('psnr_step')
    print(json.dumps({'img':name,'size':size,'factor':factor,'lr':lr,'cpu_s':time.process_time()-t0,
      'psnr_final':float(10*np.log10(1/np.mean((np.clip(r.image,0,1)-img)**2))),
      'curve':[round(float(x),2) for x in c][9::10] if c else None}), flush=True)
