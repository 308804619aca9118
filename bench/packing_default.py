"""Is `packing: auto` ever the slower path? The main job (MiniLM on the bundled reviews) with the default against the
other choice, in fresh processes, alternating (A B, B A, ...), in the precision this machine picks or one forced.

    python bench/packing_default.py [--precision bf16|no] [--train 3000] [--repeats 2]

Prints the choice `auto` made (its line before training), then per contender the median wall time of the whole run
and the median training time (the last `time` of its history), and test accuracy / macro-F1 per repeat."""
from __future__ import annotations
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def run(packing:str, precision:str, n_train:int, out:Path)->dict:
    "One main job in a fresh process; its wall time, training time, auto's line and test scores."
    cmd = [sys.executable, '-m', 'sft_nb', 'train', '--set', f'packing={packing}', '--set', f'precision={precision}',
           '--set', f'data.max_train_examples={n_train}', '--set', f'output_dir={out}', '--set', 'checkpoint_every=null', '--set', 'log_every=1000']
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    wall = time.perf_counter() - t0
    if r.returncode: sys.exit(r.stderr[-2000:])
    hist = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    res = json.loads((out/'metrics.json').read_text())
    line = next((l for l in r.stdout.splitlines() if l.startswith('packing auto:')), '')
    return dict(wall=wall, train=hist[-1]['time'], acc=res['test_accuracy'], f1=res['test_f1'], auto=line,
                free='padding-free batches' in next(l for l in r.stdout.splitlines() if l.startswith('sft-nb: model')))

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--precision', default=None)
    ap.add_argument('--train', type=int, default=3000)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--other', default=None, help='the contender: false or true (default: the path auto is expected not to take here)')
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from sft_nb.core import default_precision, precision_label, cpu_flags
    import torch
    prec = a.precision or default_precision()
    other = a.other or ('false' if prec != 'no' else 'true')
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), '?')
    flags = ' '.join(sorted(f for f in cpu_flags() if f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16')))
    print(f"# {cpu} ({os.cpu_count()} cores), flags: {flags}; {precision_label(prec)}; torch {torch.__version__}; {a.train} training reviews, 1 epoch")
    res = {'auto': [], other: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for p in (('auto', other) if i % 2 == 0 else (other, 'auto')):
                r = run(p, prec, a.train, Path(tmp)/f'{p}-{i}')
                res[p].append(r); print(f"packing={p}: wall {r['wall']:.1f} s, train {r['train']:.1f} s, test acc {r['acc']:.4f}, macro-F1 {r['f1']:.4f}, padding-free {r['free']}", flush=True)
    print(res['auto'][0]['auto'])
    print("| packing | padding-free | median wall s | median train s | test accuracy | test macro-F1 |\n|---|---|---|---|---|---|")
    for p, rs in res.items():
        accs, f1s = ' / '.join(f"{r['acc']:.3f}" for r in rs), ' / '.join(f"{r['f1']:.3f}" for r in rs)
        wall, train = statistics.median(r['wall'] for r in rs), statistics.median(r['train'] for r in rs)
        print(f"| {p} | {rs[0]['free']} | {wall:.1f} | {train:.1f} | {accs} | {f1s} |")
