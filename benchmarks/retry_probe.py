"""Probe for the pilot's retry (eighteenth session): the defaults' pilot fit (SIREN 7x64, tv:auto, the
automatic stop) of a top-left crop of a set9 image with Gaussian noise (numpy seed 0) at each
learning rate; prints the fit's PSNR (standard convention, unclipped image as returned) and its
held-out squared error against that of the mean of the kept 4-neighbours (scipy, mirrored edges),
both on the fit's [-1, 1] scale, and their ratio. Output as run: benchmarks/retry_probe.txt.

    python benchmarks/retry_probe.py set9/baboon 256 25 1e-3 1e-4
"""
import sys, numpy as np, torch
torch.set_num_threads(1)
from PIL import Image
from linr import tasks
from linr.kinds import noisy as N
from linr.fit import fit
from scipy.ndimage import convolve
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
name, size, sigma = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
img = np.asarray(Image.open(DATA / f'{name}.png').convert('RGB'), dtype=np.float64)/255
img = img[:size, :size]
rng = np.random.default_rng(0)
y = img + rng.normal(0, sigma/255, img.shape)
for lr in [float(a) for a in sys.argv[4:]]:
    obs, config = tasks.resolve([N(y)], lr=lr)
    rule = tasks.resolve_stop(obs, preset=None, steps=None, stop=None, refine=None)
    r = fit(obs, config, stop=rule)
    ho = rule if hasattr(rule,'held_out_mask') else [x for x in rule.rules if hasattr(x,'held_out_mask')][0]
    m = ho.held_out_mask(0)
    kept = (~m).astype(float)
    k = np.array([[0,1,0],[1,0,1],[0,1,0]],float)
    yy = y*2-1
    num = np.stack([convolve(yy[...,c]*kept, k, mode='mirror') for c in range(3)],-1)
    den = convolve(kept, k, mode='mirror')[...,None]
    pred = num/np.maximum(den,1e-9)
    base = ((pred-yy)[m]**2).mean()
    fitv = (((r.image*2-1)-yy)[m]**2).mean()
    psnr = 10*np.log10(1/((r.image-img)**2).mean())
    print(name, size, sigma, lr, 'steps', r.stop_step, 'psnr %.2f'%psnr, 'fit_ho %.5f base_ho %.5f ratio %.3f'%(fitv, base, fitv/base), '4sig2 %.5f'%(4*(sigma/255)**2), flush=True)
