"""Where a default restore spends its time (eighteenth session): cProfile of
``linr.restore([linr.noisy(y)])`` with every default, set9 peppers (512x512 RGB) with Gaussian
noise sigma 25 (numpy seed 0), one torch thread; prints CPU and wall seconds, PSNR (standard
convention) and the 40 costliest calls by cumulative time. Output as run (beside two other runs,
so wall > CPU): benchmarks/profile_default.txt.

    python benchmarks/profile_default.py
"""
import cProfile, pstats, time, numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from PIL import Image
import linr
img = np.asarray(Image.open(Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'set9' / 'peppers.png').convert('RGB'), dtype=np.float64)/255
rng = np.random.default_rng(0)
noisy = img + rng.normal(0, 25/255, img.shape)
t0=time.process_time(); w0=time.time()
pr=cProfile.Profile(); pr.enable()
from linr.kinds import noisy as N
out = linr.restore([N(noisy)], progress=False)
pr.disable()
print('cpu', time.process_time()-t0, 'wall', time.time()-w0)
res = out
im = np.asarray(getattr(res,'image',res))
from skimage.metrics import peak_signal_noise_ratio as psnr
print('psnr', psnr(img, np.clip(im,0,1), data_range=1))
st=pstats.Stats(pr); st.sort_stats('cumulative').print_stats(40)
