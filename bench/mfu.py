"""Model FLOP utilisation (MFU) of MiniLM full fine-tuning, and where a training step's time goes.

One process, fixed batches (no data pipeline): for each optimizer variant, time the forward + backward pass,
gradient clipping and the optimizer step of MiniLM on a 32 x 28 batch (the mean padded shape of length-grouped
Rotten Tomatoes batches at max length 48), alternating the variants round by round, and measure the fp32 matmul
peak (960x384x1536) in every round too, so that load from other processes hits both the same way.

FLOPs of one step (see `common.train_flops`): 6 x non-embedding parameters x tokens (forward 2, backward 4 per
weight and token) + 12 x layers x hidden x batch x seq^2 (attention scores and weighted sums: 4 x seq^2 x hidden
per layer and sequence forward, x3 with backward). Embedding lookups, layer norms, softmax, GELU and the
optimizer count as zero: they are overhead. MFU = step FLOPs / step time / matmul peak.

Variants: `adamw` (torch.optim.AdamW defaults: the for-loop implementation on CPU), `adamw_fused` (what HF
Trainer uses: `optim="adamw_torch_fused"`), `sft_nb` (what `Learner` does by default: fused AdamW and, on CPU,
`CpuDropout` masks, `ReuseCpuMemory` and `CpuAttention`, its `cpu_speedups`, and `FirstTokenHead`), and `sft_nb_frozen_emb` (the same with the word embeddings frozen: half of MiniLM's
22.7 M parameters leave the optimizer and get no gradient).

`--profile` adds a torch-profiler pass over the `sft_nb` variant: the operators that take the step's time, and the
share of matrix multiplies (`aten::mm`, `addmm`, `bmm`), from which it derives the matmul efficiency (step FLOPs /
matmul time / peak) and the MFU the step would have if everything but the matrix multiplies were free.

    .venv/bin/python bench/mfu.py [--rounds 5] [--steps 3] [--profile] [--device cuda]
"""
from __future__ import annotations
import argparse, copy, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sft_nb.core import precision_label
from common import precision_for, check_device, command_line, environment, matmul_gflops, md_table, param_counts, save, train_flops

VARIANTS = {'adamw': dict(), 'adamw_fused': dict(fused=True), 'sft_nb': dict(fused=True, cpu_dropout=True, cpu_speedups=True),
            'sft_nb_frozen_emb': dict(fused=True, cpu_dropout=True, cpu_speedups=True, freeze_emb=True)}
OPTIONS = ('freeze_emb', 'cpu_dropout', 'cpu_speedups')

def speedups(on:bool, batch:dict, device:str, model=None):
    "The Learner's default speed callbacks (`ReuseCpuMemory` is process-wide: switched on around one variant's steps only)."
    import contextlib, torch
    from types import SimpleNamespace
    from sft_nb.callbacks.speed import ReuseCpuMemory, CpuAttention, FirstTokenHead
    @contextlib.contextmanager
    def ctx():
        cbs = [ReuseCpuMemory(), CpuAttention(), FirstTokenHead()] if on else []
        for cb in cbs:
            cb.learn = SimpleNamespace(accelerator=SimpleNamespace(device=torch.device(device)), batch=batch, training=True,
                                       model=model)
            cb.before_fit()
        try: yield
        finally:
            for cb in cbs: cb.after_fit()
    return ctx()

def linear_shapes(model, tokens:int)->list[tuple[int, int, int]]:
    """The (m, k, n) matrix products of one training step through every `nn.Linear` of `model` on `tokens` tokens:
    forward x @ W^T, backward dY @ W (input gradient) and dY^T @ x (weight gradient); the classifier head on the
    pooled token is left out (a few rows)."""
    import torch
    shapes = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and 'classifier' not in name and 'pooler' not in name:
            i, o = m.in_features, m.out_features
            shapes += [(tokens, i, o), (tokens, o, i), (o, tokens, i)]
    return shapes

def shape_peak(shapes, dtype, device:str, seconds:float=0.3)->float:
    """GFLOP/s of `shapes` each timed alone (best of repeats over `seconds`), weighted by their FLOPs: the matmul rate the
    step's own shapes allow, so that MFU against it is pure overhead and its ratio to the big-matmul peak is shape."""
    import torch
    from collections import Counter
    total_flops, total_s = 0.0, 0.0
    for (m, k, n), count in Counter(shapes).items():
        a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
        for _ in range(3): a @ b
        best, end = float('inf'), time.perf_counter() + seconds
        while time.perf_counter() < end:
            if device == 'cuda': torch.cuda.synchronize()
            t = time.perf_counter(); a @ b
            if device == 'cuda': torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        total_flops += count * 2 * m * k * n; total_s += count * best
    return total_flops / total_s / 1e9

def main(args):
    import os, torch
    check_device(args.device); os.environ['BENCH_DEVICE'] = args.device
    if args.threads: torch.set_num_threads(args.threads)
    from sft_nb.models import load_model
    dev = torch.device(args.device)
    base = load_model('minilm', 'classification', num_labels=2).to(dev)
    c = base.config
    ids = torch.randint(1000, 30000, (args.batch, args.seq), device=dev)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.randint(0, 2, (args.batch,), device=dev))
    prec = precision_for(args.device)  # the peak below is measured in the same dtype
    amp = torch.autocast(args.device, dtype=torch.bfloat16 if prec == 'bf16' else torch.float16, enabled=prec != 'no')
    sync = torch.cuda.synchronize if args.device == 'cuda' else (lambda: None)
    runs = {}
    for name, v in VARIANTS.items():
        m = copy.deepcopy(base).train()
        if v.get('freeze_emb'): m.get_input_embeddings().weight.requires_grad_(False)
        if v.get('cpu_dropout') and args.device == 'cpu':
            from sft_nb.callbacks.speed import CpuDropout
            for d in m.modules():
                if type(d) is torch.nn.Dropout: d.__class__ = CpuDropout
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.01,
                                **{k: x for k, x in v.items() if k not in OPTIONS})
        runs[name] = (m, opt)
    pc = param_counts(base)
    flops = train_flops(pc['non_embedding'], c.num_hidden_layers, c.hidden_size, args.batch * args.seq, args.batch * args.seq ** 2)
    rec = {n: {'fwd_bwd': [], 'clip': [], 'opt': []} for n in VARIANTS}
    peaks = []
    def step(m, opt):
        t0 = time.perf_counter()
        with amp: loss = m(**batch).loss
        loss.backward(); sync(); t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); sync(); t2 = time.perf_counter()
        opt.step(); opt.zero_grad(set_to_none=True); sync(); t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2
    for m, opt in runs.values(): step(m, opt)  # warm-up: optimizer state, allocator
    for r in range(args.rounds):
        peaks.append(matmul_gflops(seconds=1.0))
        for name in (list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]):
            with speedups(VARIANTS[name].get('cpu_speedups', False), batch, args.device, runs[name][0]):
                for _ in range(args.steps):
                    for k, t in zip(('fwd_bwd', 'clip', 'opt'), step(*runs[name])): rec[name][k].append(t)
        print(f"round {r+1}/{args.rounds}: matmul {peaks[-1]:.1f} GFLOP/s, " +
              ', '.join(f"{n} {sum(statistics.median(rec[n][k]) for k in rec[n]):.3f} s" for n in VARIANTS), flush=True)
    peak = max(peaks)  # the best the hardware showed in this run: a conservative denominator on a noisy host
    shapes = linear_shapes(base, args.batch * args.seq)
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(prec, torch.float32)
    speak = max(shape_peak(shapes, dtype, args.device) for _ in range(3))
    rows, prof_md, prof = [], '', None
    if args.profile:
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU]) as p:
            with speedups(True, batch, args.device, runs['sft_nb'][0]):
                for _ in range(args.steps * 2): step(*runs['sft_nb'])
        ev = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ev)
        mm = sum(e.self_cpu_time_total for e in ev if e.key in ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm'))
        per_step = lambda us: us / 1e6 / (args.steps * 2)
        prof = {'matmul_share_pct': 100 * mm / total, 'matmul_s_per_step': per_step(mm),
                'matmul_efficiency_pct': 100 * flops / per_step(mm) / 1e9 / peak,
                'top': [{'op': e.key, 'share_pct': 100 * e.self_cpu_time_total / total, 'calls_per_step': e.count / (args.steps * 2),
                         'ms_per_step': per_step(e.self_cpu_time_total) * 1e3} for e in ev[:15]]}
        prof_md = (f"\n\n## Where the sft_nb step's time goes (torch profiler, {args.steps * 2} steps)\n\n"
                   f"Matrix multiplies: {prof['matmul_share_pct']:.0f}% of the step, running at {prof['matmul_efficiency_pct']:.0f}% "
                   f"of the measured peak; the rest is overhead (the MFU ceiling with free overhead is that "
                   f"{prof['matmul_efficiency_pct']:.0f}%).\n\n" + md_table(prof['top'], ['op', 'share_pct', 'calls_per_step', 'ms_per_step'], nd=2))
    for n in VARIANTS:
        med = {k: statistics.median(v) for k, v in rec[n].items()}
        total = sum(med.values())
        rows.append({'variant': n, 'fwd_bwd_s': med['fwd_bwd'], 'clip_s': med['clip'], 'opt_s': med['opt'], 'step_s': total,
                     'opt_pct': 100 * med['opt'] / total, 'gflops': flops / total / 1e9,
                     'mfu_pct': 100 * flops / total / 1e9 / peak, 'fwd_bwd_mfu_pct': 100 * flops / med['fwd_bwd'] / 1e9 / peak,
                     'mfu_at_shapes_pct': 100 * flops / total / 1e9 / speak})
    env = environment()
    md = (f"# MFU and step breakdown: MiniLM, batch {args.batch} x {args.seq} tokens, {args.device}\n\n`{command_line()}`\n\n"
          f"{env['date_utc']}, {env['cpu']}, {env['cores']} cores, load average {env['load_avg_1m']} (shared machine). "
          f"Step FLOPs {flops / 1e9:.1f} GFLOP ({pc['non_embedding'] / 1e6:.1f} M non-embedding params of {pc['params'] / 1e6:.1f} M); "
          f"{precision_label(prec)}; CPU flags {env['cpu_flags']}; matmul peak (best of {len(peaks)} rounds) {peak:.1f} GFLOP/s, range {min(peaks):.1f}-{max(peaks):.1f}; "
          f"the step's own linear-layer shapes, each timed alone, reach {speak:.1f} GFLOP/s ({100 * speak / peak:.0f}% of that peak): "
          "`mfu_pct` is against the peak, `mfu_at_shapes_pct` against the shapes' rate (what is left is overhead).\n\n"
          "Medians over rounds x steps (seconds per optimizer step).\n\n" + md_table(rows, list(rows[0])) + prof_md)
    print(md)
    save('mfu' + ('_cuda' if args.device == 'cuda' else '') + ('' if prec == 'no' else '_' + prec), {'precision': prec, 'shape_peak': speak, 'command': command_line(), 'env': env, 'flops_per_step': flops,
         'params': pc, 'matmul_peaks': peaks, 'rows': rows, 'raw': rec, 'profile': prof}, md)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=5); p.add_argument('--steps', type=int, default=3)
    p.add_argument('--batch', type=int, default=32); p.add_argument('--seq', type=int, default=28)
    p.add_argument('--threads', type=int, default=0); p.add_argument('--device', default='cpu')
    p.add_argument('--profile', action='store_true', help="profile the sft_nb variant's step by operator")
    main(p.parse_args())
