"""Peak memory of the token loss over a large vocabulary: naive (full logits) against `chunked_cross_entropy`.

4,096 supervised tokens, hidden 256, vocabulary 32,000, forward and backward, each measured in a fresh process so that
one measurement cannot hide in the other's freed memory. Used by `nbs/07_loss.ipynb`; run by hand with
`python bench/loss_memory.py` (both) or `python bench/loss_memory.py naive` (one, in this process).
"""
from __future__ import annotations
import os, subprocess, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb

def measure(how:str)->tuple[float, float]:
    "Extra peak memory (MB) and loss of one forward+backward in this process, `how` = 'naive' or 'chunked'."
    import torch
    from sft_nb.loss import chunked_cross_entropy, token_cross_entropy
    torch.manual_seed(0)
    n, d, v = 4096, 256, 32000
    h = torch.randn(n, d, requires_grad=True); w = (torch.randn(v, d) * 0.02).requires_grad_(); y = torch.randint(0, v, (n,))
    base = peak_rss_mb()
    loss = token_cross_entropy(h @ w.t(), y) if how == 'naive' else chunked_cross_entropy(h, w, y, chunk_size=256)
    loss.backward()
    return peak_rss_mb() - base, loss.item()

def cross_entropy_peak_mb(how:str='chunked')->tuple[float, float]:
    "Extra peak memory (MB) and loss of `measure(how)`, run in a fresh process."
    # glibc raises its mmap threshold after big frees, so freed chunks would stay in the heap and inflate the peak RSS:
    # pinning the threshold makes every large tensor its own mapping, returned on free, so RSS tracks live tensors.
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '1048576'}
    out = subprocess.run([sys.executable, __file__, how], capture_output=True, text=True, timeout=300, check=True, env=env)
    mb, loss = out.stdout.split()
    return float(mb), float(loss)

if __name__ == '__main__':
    if len(sys.argv) > 1: print(*measure(sys.argv[1]))
    else:
        for how in ('naive', 'chunked'): print(how, 'extra peak MB, loss:', *cross_entropy_peak_mb(how))
