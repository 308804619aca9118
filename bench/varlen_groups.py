"""How a padding-free row's attention is cut into calls: `sft_nb.loss._length_groups` at several call prices, against
the first rule (a group may compute up to twice its examples' own attention area) and one call for the whole row.

`varlen_sdpa` forward + backward (`VARLEN_CPU`: the CPU kernel where it wins) on rows shaped like the data the library
meets: SmolLM2 attention (9 query heads, 3 key heads of 64, causal) on dialogues of 100-400 tokens and instruction
reviews of 40-120; MiniLM attention (12 heads of 32, non-causal) on 32 short texts, 32 texts of 10-128 and 16 of
50-256 tokens. Contenders alternate round by round; medians in ms. `sft_nb.loss.CALL_AREA` is the price the library uses.

    .venv/bin/python bench/varlen_groups.py [--rounds 7] [--precision bf16 no]
"""
from __future__ import annotations
import argparse, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, environment, md_table, save

PRICES = (3072, 6144, 12288, 24576, 49152)

def first_rule(lens:list[int], waste:float=2.0)->list[list[int]]:
    "The grouping `varlen_sdpa` used first: longest first, join while the padded square stays within `waste` x the own."
    groups, own = [], 0
    for i in sorted(range(len(lens)), key=lambda i: -lens[i]):
        g = groups[-1] if groups else None
        if g and (len(g) + 1) * lens[g[0]] ** 2 <= waste * (own + lens[i] ** 2): g.append(i); own += lens[i] ** 2
        else: groups.append([i]); own = lens[i] ** 2
    return groups

def rows(seed:int=0)->dict:
    import numpy as np
    rng = np.random.default_rng(seed)
    r = lambda lo, hi, n: [int(x) for x in rng.integers(lo, hi, n)]
    return {'dialogues 8 x 205-390 (SmolLM2)': ([390, 350, 320, 300, 260, 240, 210, 205], 9, 3, 64, True),
            'dialogues 8 x 100-400 (SmolLM2)': (r(100, 400, 8), 9, 3, 64, True),
            'reviews 8 x 40-120 (SmolLM2)': (r(40, 120, 8), 9, 3, 64, True),
            'texts 32 x 5-48 (MiniLM)': (r(5, 48, 32), 12, 12, 32, False),
            'texts 32 x 10-128 (MiniLM)': (r(10, 128, 32), 12, 12, 32, False),
            'texts 16 x 50-256 (MiniLM)': (r(50, 256, 16), 12, 12, 32, False)}

def time_row(lens, H, Hk, D, causal, dtype, planners:dict, rounds:int)->dict:
    import numpy as np, torch
    import sft_nb.loss as loss
    T, cu = sum(lens), torch.tensor([0] + list(np.cumsum(lens)), dtype=torch.int32)
    q = torch.randn(1, H, T, D, dtype=dtype, requires_grad=True)
    k, v = (torch.randn(1, Hk, T, D, dtype=dtype, requires_grad=True) for _ in range(2))
    layer = torch.nn.Module(); layer.is_causal = causal  # a module is in training mode
    real = loss._length_groups
    rec = {n: [] for n in planners}
    try:
        for _ in range(rounds + 1):
            for name, plan in planners.items():
                loss._length_groups = lambda lens, call_area=None, plan=plan: plan(lens)
                loss._cached_slots.cache_clear()
                t = time.perf_counter()
                out, _ = loss.varlen_sdpa(layer, q, k, v, None, cu_seq_lens_q=cu, cpu_kernel=True)
                out.float().sum().backward()
                rec[name].append(time.perf_counter() - t)
    finally: loss._length_groups = real; loss._cached_slots.cache_clear()
    return {n: 1e3 * statistics.median(x[1:]) for n, x in rec.items()}  # the first round warms up

def main(args):
    import torch
    from sft_nb.loss import CALL_AREA, _length_groups
    planners = {'first rule': first_rule, 'one call': lambda lens: [sorted(range(len(lens)), key=lambda i: -lens[i])],
                **{f'price {p}': (lambda p: lambda lens: _length_groups(lens, p))(p) for p in PRICES}}
    table = []
    for prec in args.precision:
        dtype = torch.bfloat16 if prec == 'bf16' else torch.float32
        for name, (lens, H, Hk, D, causal) in rows().items():
            ms = time_row(lens, H, Hk, D, causal, dtype, planners, args.rounds)
            best = min(ms.values())
            table.append({'precision': prec, 'row': name, **{k: round(v, 1) for k, v in ms.items()},
                          'library_vs_best': round(ms[f'price {CALL_AREA}'] / best, 2),
                          'first_rule_vs_library': round(ms['first rule'] / ms[f'price {CALL_AREA}'], 2)})
            print(table[-1], flush=True)
    env = environment()
    md = (f"# Padding-free attention: calls per row\n\n`{command_line()}`\n\n{env['date_utc']}, {env['cpu']} "
          f"(flags: {env['cpu_flags']}), {env['cores']} cores, load average {env['load_avg_1m']} at start. `varlen_sdpa` "
          f"forward + backward of one layer, ms (median of {args.rounds} alternating rounds); the library's price is "
          f"`CALL_AREA` = {CALL_AREA}.\n\n" + md_table(table, list(table[0]), nd=2))
    print(md)
    save('varlen_groups' + (f'_{args.tag}' if args.tag else ''), {'command': command_line(), 'env': env, 'rows': table}, md)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=7); p.add_argument('--precision', nargs='+', default=['bf16', 'no'])
    p.add_argument('--tag', default='')
    main(p.parse_args())
