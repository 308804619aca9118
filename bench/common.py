"""Helpers shared by the benchmark scripts in `bench/`.

Every benchmark runs each contender in a *fresh subprocess* (so peak RSS is per run and no contender
inherits another's warm caches), alternating the contenders (A B C, C B A, A B C, ...) inside ONE
invocation, and reports medians and ratios side by side. On a shared machine absolute timings drift;
alternation makes the ratios meaningful even when the absolute numbers are noisy.

A script calls `main_or_worker(RUNNERS, parent)`: with `--worker NAME --cfg JSON` it runs one contender
and prints one `BENCH_RESULT {json}` line; otherwise it runs `parent(args)`, which calls `alternate(...)`.
"""
from __future__ import annotations
import json, os, platform, subprocess, sys, time, statistics
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get('SFT_NB_BENCH_RESULTS', BENCH / 'results'))  # tests write elsewhere
MARK = 'BENCH_RESULT '

# ---------------------------------------------------------------- worker side
def peak_rss_mb()->float:
    "Peak resident memory of this process, MB: its own high-water mark (`sft_nb.core.peak_rss_mb`)."
    from sft_nb.core import peak_rss_mb as own_peak  # imported late: a contender's process loads nothing of sft_nb before its run
    return own_peak()

def device_memory(device:str)->dict:
    "Peak memory figures of this process: host RSS always, GPU allocator peak on CUDA."
    out = {'peak_rss_mb': round(peak_rss_mb(), 1)}
    if device == 'cuda':
        import torch
        out['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out

def check_device(device:str):
    "Refuse `--device cuda` where there is no GPU (the CUDA path exists but needs a GPU)."
    if device == 'cuda':
        import torch
        if not torch.cuda.is_available(): sys.exit("--device cuda: no CUDA GPU here (torch.cuda.is_available() is False)")
    elif device != 'cpu': sys.exit(f"--device must be cpu or cuda, not {device!r}")

def precision_for(device:str)->str:
    """The precision every contender trains in: `sft_nb.core.default_precision(device)` (bf16 on a CPU with native bf16
    and on recent GPUs, fp32 on other CPUs; `SFT_NB_PRECISION=no|bf16` forces one). Never one precision per library."""
    from sft_nb.core import default_precision
    return default_precision(device)

def matmul_dtype(device:str):
    "The dtype of the matmuls the contenders run (the MFU peak is measured in it)."
    import torch
    return {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision_for(device), torch.float32)

def matmul_gflops(m:int=960, k:int=384, n:int=1536, seconds:float=1.5, dtype=None)->float:
    """Best GFLOP/s of an m x k @ k x n matmul over `seconds` (a MiniLM FFN-shaped product: 32 x 30 tokens), in the
    precision the contenders train in (`matmul_dtype`: bf16 where it is native, fp32 on other CPUs)."""
    import torch
    dev = 'cuda' if torch.cuda.is_available() and os.environ.get('BENCH_DEVICE') == 'cuda' else 'cpu'
    if dtype is None: dtype = matmul_dtype(dev)
    a = torch.randn(m, k, dtype=dtype or torch.float32, device=dev)
    b = torch.randn(k, n, dtype=dtype or torch.float32, device=dev)
    for _ in range(3): a @ b
    best, end = float('inf'), time.perf_counter() + seconds
    while time.perf_counter() < end:
        if dev == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10): a @ b
        if dev == 'cuda': torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / 10)
    return 2 * m * k * n / best / 1e9

def _seq_lens(e:dict):
    "Lengths of the examples in one (possibly packed) row: sft_nb packs into `seq_lens`, TRL into `seq_lengths`."
    return e.get('seq_lens', e.get('seq_lengths', [len(e['input_ids'])]))

class TokenCounter:
    """Wrap a collate function to count what it batches: examples, real tokens (the examples' own lengths, before
    padding), padded slots, supervised tokens (labels != -100 in token-level labels, after the one-token shift) and
    the sum of squared sequence lengths (attention FLOPs; a packed row counts each of its examples separately).
    Loaders may collate one batch ahead of training (accelerate prefetches to detect the last batch):
    `stats(n_batches)` counts only the first `n_batches`."""
    def __init__(self, collate): self.collate, self.active, self.per = collate, True, []
    def __call__(self, examples):
        b = self.collate(examples)
        if self.active:
            seqs = [list(_seq_lens(e)) for e in examples]
            lab = b.get('labels')
            self.per.append((sum(len(s) for s in seqs), sum(len(e['input_ids']) for e in examples), b['input_ids'].numel(),
                             int(lab[:, 1:].ne(-100).sum()) if lab is not None and lab.dim() == 2 else 0,
                             sum(l * l for s in seqs for l in s)))
        return b
    def stats(self, n_batches:int|None=None)->dict:
        per = self.per[:n_batches] if n_batches else self.per
        ex, real, slots, sup, sq = (sum(x[i] for x in per) for i in range(5))
        return {'examples': ex, 'real_tokens': real, 'padded_slots': slots, 'batches': len(per),
                'padding_pct': round(100 * (1 - real / max(slots, 1)), 1), 'supervised_tokens': sup, 'sum_len_sq': sq}

def param_counts(model)->dict:
    "Parameter counts: total, trainable, and non-embedding (everything but `nn.Embedding` tables)."
    import torch
    emb = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    ps = list(model.parameters())
    return {'params': sum(p.numel() for p in ps), 'trainable': sum(p.numel() for p in ps if p.requires_grad),
            'non_embedding': sum(p.numel() for p in ps if id(p) not in emb)}

def train_flops(non_embedding:int, layers:int, hidden:int, real_tokens:int, sum_len_sq:int)->float:
    """Model FLOPs of training: 6 x non-embedding params x real tokens (forward 2, backward 4 per weight and token)
    plus attention 12 x layers x hidden x sum over sequences of len^2 (QK^T and AV: 2 x 2 x len^2 x hidden per layer
    forward, x3 with backward). Padding is not counted: it is wasted work, not useful work."""
    return 6 * non_embedding * real_tokens + 12 * layers * hidden * sum_len_sq

def emit(result:dict):
    "Print the worker's result line for the parent."
    print(MARK + json.dumps(result), flush=True)

# ---------------------------------------------------------------- parent side
def run_worker(script:str|Path, name:str, cfg:dict, timeout:float=3600)->dict:
    "Run one contender in a fresh Python process; return its result dict (or {'error': ...})."
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false', 'BENCH_DEVICE': cfg.get('device', 'cpu'),
           'TRANSFORMERS_VERBOSITY': 'error', 'PYTHONWARNINGS': 'ignore'}
    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, str(script), '--worker', name, '--cfg', json.dumps(cfg)],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired: return {'name': name, 'error': f'timeout after {timeout}s'}
    lines = [l for l in p.stdout.splitlines() if l.startswith(MARK)]
    if p.returncode or not lines:
        return {'name': name, 'error': f'exit {p.returncode}: ' + (p.stderr or p.stdout)[-2000:]}
    res = json.loads(lines[-1][len(MARK):])
    res.update(name=name, process_s=round(time.perf_counter() - t, 1))
    return res

def alternate(script, names:list[str], cfg:dict, repeats:int, timeout:float=3600, log=print, partial:str|None=None)->list[dict]:
    "Run every contender `repeats` times, alternating the order (ABC, CBA, ABC, ...); returns all results."
    out = []
    if partial: RESULTS.mkdir(exist_ok=True)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            load = os.getloadavg()[0]
            # with `vary_seed`, repeat r trains with seed `seed + r` (same data), so accuracy differences get a noise estimate
            res = run_worker(script, name, {**cfg, 'train_seed': cfg['seed'] + r} if cfg.get('vary_seed') else cfg, timeout)
            res.update(repeat=r, load_before=round(load, 2))
            out.append(res)
            if partial: (RESULTS / f'{partial}.partial.json').write_text(json.dumps({'cfg': cfg, 'results': out}, indent=1))
            log(f"  [{r+1}/{repeats}] {name}: " + (res['error'][-400:] if 'error' in res else
                ', '.join(f"{k}={res[k]}" for k in res if isinstance(res[k], (int, float)) and k not in ('repeat',))), flush=True)
    return out

def median(results:list[dict], name:str, key:str):
    "Median of `key` over the successful runs of contender `name` (None if none)."
    v = [r[key] for r in results if r.get('name') == name and 'error' not in r and r.get(key) is not None]
    return statistics.median(v) if v else None

def paired_ratios(results:list[dict], a:str, b:str, key:str)->list[float]:
    "Per-repeat ratios a/b of `key` (each from the same repeat, i.e. adjacent in time)."
    out = []
    for r in sorted({x['repeat'] for x in results}):
        va = [x[key] for x in results if x['name'] == a and x['repeat'] == r and 'error' not in x]
        vb = [x[key] for x in results if x['name'] == b and x['repeat'] == r and 'error' not in x]
        if va and vb and vb[0]: out.append(va[0] / vb[0])
    return out

def fmt(v, nd=3)->str:
    if v is None: return '-'
    if isinstance(v, float): return f"{v:,.{nd}f}" if abs(v) < 100 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)

def md_table(rows:list[dict], cols:list[str], nd=3)->str:
    "A markdown table of `rows` restricted to `cols`."
    head = '| ' + ' | '.join(cols) + ' |\n|' + '---|' * len(cols) + '\n'
    return head + ''.join('| ' + ' | '.join(fmt(r.get(c), nd) for c in cols) + ' |\n' for r in rows)

def environment()->dict:
    "Where and when: date, CPU, cores, load, library versions (for the results file)."
    import torch, transformers
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor()) \
        if Path('/proc/cpuinfo').exists() else platform.processor()
    env = {'date_utc': datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'), 'cpu': cpu, 'cores': os.cpu_count(),
           'torch_threads': torch.get_num_threads(), 'load_avg_1m': round(os.getloadavg()[0], 2),
           'python': platform.python_version(), 'torch': torch.__version__, 'transformers': transformers.__version__,
           'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    from sft_nb.core import cpu_flags
    env['cpu_flags'] = ' '.join(sorted(f for f in cpu_flags() if f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile', 'avx512_vnni', 'fma')))
    env['precision'] = precision_for('cuda' if os.environ.get('BENCH_DEVICE') == 'cuda' else 'cpu')
    try:
        import trl; env['trl'] = trl.__version__
    except ImportError: pass
    return env

def save(name:str, payload:dict, markdown:str):
    "Write bench/results/<name>.json (raw) and <name>.md (the tables)."
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'{name}.json').write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / f'{name}.md').write_text(markdown)
    (RESULTS / f'{name}.partial.json').unlink(missing_ok=True)
    print(f"saved {RESULTS / name}.json and .md")

def command_line()->str: return ' '.join(['.venv/bin/python', *[a if ' ' not in a else repr(a) for a in sys.argv]])

def main_or_worker(runners:dict, parent, parser):
    "Dispatch: `--worker NAME --cfg JSON` runs one contender in this process, else the parent runs the comparison."
    parser.add_argument('--worker', help='internal: run one contender and print its result')
    parser.add_argument('--cfg', help='internal: the JSON configuration of the worker')
    args = parser.parse_args()
    if args.worker:
        cfg = json.loads(args.cfg)
        import torch
        if cfg.get('threads'): torch.set_num_threads(cfg['threads'])
        emit(runners[args.worker](cfg))
    else: parent(args)
