"""What one example costs in a padding-free batch, in tokens of matmul work: the constant behind `packing: auto`.

A padded batch computes every padded position; a padding-free row computes only real tokens but runs attention once
per example. On the same length-grouped batches of the bundled reviews, MiniLM forward + backward is timed both
ways (alternating, median of repeats), per precision:
    c = padded time / padded tokens            (seconds per token of work)
    e = (padding-free time - real tokens * c) / examples   (seconds an example's own attention calls add)
    per-example cost = e / c                   (tokens: padding-free pays when it saves more padding than this per example)

    python bench/packing_cost.py [--precision no bf16] [--batches 12] [--repeats 5] [--batch-size 32] [--max-length 64]
Prints one table row per precision with the CPU and its flags; `sft_nb.batches.PER_EXAMPLE_TOKENS` holds the figures."""
from __future__ import annotations
import argparse, statistics, time, platform, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def measure(precision:str, n_batches:int, repeats:int, batch_size:int, max_length:int, clock=time.perf_counter)->dict:
    import torch
    from transformers import AutoTokenizer
    from sft_nb.assets import rotten_tomatoes, minilm_path
    from sft_nb.batches import dataloaders, PaddingFreeCollator, PadCollator
    from sft_nb.models import load_model
    from sft_nb.loss import use_varlen_attention
    rt = rotten_tomatoes()
    tok = AutoTokenizer.from_pretrained(minilm_path())
    dls = dataloaders(rt, tok, 'classification', batch_size=batch_size, max_length=max_length, verbose=False)
    ds = dls.train.dataset
    batches = dls.train.batch_sampler.batches(0)[:n_batches]
    cols = [c for c in ('input_ids', 'token_type_ids', 'attention_mask', 'labels', 'length') if c in ds.column_names]
    rows = [[{k: ds[i][k] for k in cols} for i in b] for b in batches]
    strip = lambda ex: [{k: v for k, v in e.items() if k != 'length'} for e in ex]
    padded = [PadCollator(tok)(strip(ex)) for ex in rows]
    free = [PaddingFreeCollator(tok, token_labels=False)(strip(ex)) for ex in rows]
    model = load_model('minilm', 'classification', id2label=dls.id2label)  # dropout on, as in training: per-example attention dropout is part of the cost
    use_varlen_attention(model)
    model.train()
    dtype = {'bf16': torch.bfloat16}.get(precision)
    def step(b):
        with torch.autocast('cpu', dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(**b)
        out.loss.backward(); model.zero_grad(set_to_none=True)
    # the Learner's defaults: heap reuse, `cpu_attention` in half precision, a classifier's last layer for its first token
    from types import SimpleNamespace
    from sft_nb.callbacks.speed import ReuseCpuMemory, CpuAttention, FirstTokenHead
    cbs = [ReuseCpuMemory(), CpuAttention(), FirstTokenHead()]
    for cb in cbs:
        cb.learn = SimpleNamespace(accelerator=SimpleNamespace(device=torch.device('cpu')), model=model)
        cb.before_fit()
    for b in padded[:2] + free[:2]: step(b)  # warm-up
    times = {'padded': [], 'free': []}
    for r in range(repeats):
        order = ('padded', 'free') if r % 2 == 0 else ('free', 'padded')
        for kind in order:
            t0 = clock()
            for b in (padded if kind == 'padded' else free): step(b)
            times[kind].append(clock() - t0)
    for cb in cbs: cb.after_fit()
    tp, tf = statistics.median(times['padded']), statistics.median(times['free'])
    P = sum(int(b['input_ids'].numel()) for b in padded)
    R = sum(int(b['input_ids'].shape[1]) for b in free)
    N = sum(len(ex) for ex in rows)
    c = tp / P; e = (tf - R * c) / N
    return dict(precision=precision, padded_s=round(tp, 3), free_s=round(tf, 3), padding_pct=round(100 * (P - R) / P, 1),
                avg_padded_len=round(P / N, 1), per_example_tokens=round(e / c, 1), free_vs_padded=round(tp / tf, 3))

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--precision', nargs='+', default=['no', 'bf16'])
    ap.add_argument('--batches', type=int, default=12)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--max-length', type=int, default=64)
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: its default)')
    ap.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                    help="cpu: the main thread's CPU time (with --threads 1, robust to other processes on the machine)")
    a = ap.parse_args()
    from sft_nb.core import cpu_flags, cpu_has_fast_bf16
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor())
    flags = ' '.join(sorted(f for f in cpu_flags() if f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'fma')))
    print(f"# {cpu}, {torch.get_num_threads()} threads, {a.clock} clock, flags: {flags}; native bf16: {cpu_has_fast_bf16()}; torch {torch.__version__}")
    print("| precision | padded s | padding-free s | padding % | padded tokens / example | per-example cost (tokens) | padded / free |")
    print("|---|---|---|---|---|---|---|")
    for p in a.precision:
        r = measure(p, a.batches, a.repeats, a.batch_size, a.max_length, time.thread_time if a.clock == 'cpu' else time.perf_counter)
        print(f"| {p} | {r['padded_s']} | {r['free_s']} | {r['padding_pct']} | {r['avg_padded_len']} | {r['per_example_tokens']} | {r['free_vs_padded']} |", flush=True)
