"""Gradient checkpointing on SmolLM2-135M: the activation memory it saves and the time it costs.

    .venv/bin/python bench/checkpointing.py [--batch-size 4] [--seq-len 512] [--steps 3] [--repeats 1] [--threads 0]

Each variant (`Learner(gradient_checkpointing=False)` and `=True`) trains the same random-token batches for `--steps`
optimizer steps in a fresh process, in the precision the hardware has (`common.precision_for`). Reported per variant:
seconds per step (the first step, which allocates the optimizer state, is not timed), peak RSS, and the memory a step
adds on top of the loaded model (`peak RSS - RSS before fit`): weights, gradients and AdamW state are the same in both
variants, so the difference between them is the activation memory checkpointing saves. On a GPU (`--device cuda`)
the same figures come from `torch.cuda.max_memory_allocated`."""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (alternate, check_device, command_line, device_memory, environment, main_or_worker, md_table, median,
                    paired_ratios, peak_rss_mb, precision_for, save)

SCRIPT = Path(__file__).resolve()

def run(cfg, checkpointing:bool)->dict:
    import torch
    from types import SimpleNamespace
    from transformers import AutoModelForCausalLM
    from sft_nb.assets import smollm2_path
    from sft_nb.core import Callback, rss_mb
    from sft_nb.learner import Learner
    torch.manual_seed(cfg['seed'])
    dev = cfg['device']
    model = AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.float32)
    g = torch.Generator().manual_seed(cfg['seed'])
    ids = [torch.randint(0, model.config.vocab_size, (cfg['batch_size'], cfg['seq_len']), generator=g) for _ in range(cfg['steps'])]
    batches = [{'input_ids': x, 'attention_mask': torch.ones_like(x), 'labels': x.clone()} for x in ids]
    times = []
    class StepTimes(Callback):
        def before_batch(self): self.t = time.perf_counter()
        def after_step(self): times.append(time.perf_counter() - self.t)
    train = torch.utils.data.DataLoader(batches, batch_size=None)  # each item is already a batch
    learn = Learner(model, SimpleNamespace(train=train, valid=None), cbs=[StepTimes()], progress=False, lr=2e-5,
                    precision=precision_for(dev), gradient_checkpointing=checkpointing, seed=cfg['seed'])
    if dev == 'cuda': torch.cuda.reset_peak_memory_stats()
    before = rss_mb() if dev == 'cpu' else torch.cuda.memory_allocated() / 2**20
    learn.fit(1)
    peak = peak_rss_mb() if dev == 'cpu' else torch.cuda.max_memory_allocated() / 2**20
    timed = times[1:] or times
    return {'s_per_step': round(sum(timed) / len(timed), 2), 'step_mem_mb': round(peak - before, 1), 'before_fit_mb': round(before, 1),
            'peak_mb': round(peak, 1), 'final_loss': round(learn.train_losses[-1][1], 4), **device_memory(dev)}

RUNNERS = {'no_checkpointing': lambda c: run(c, False), 'checkpointing': lambda c: run(c, True)}
COLS = ['variant', 's_per_step', 'step_mem_mb', 'before_fit_mb', 'peak_mb', 'final_loss']

def report(results, cfg, env, command)->str:
    rows = [{'variant': n, **{k: median(results, n, k) for k in COLS[1:]}} for n in RUNNERS]
    t = paired_ratios(results, 'checkpointing', 'no_checkpointing', 's_per_step')
    m = paired_ratios(results, 'checkpointing', 'no_checkpointing', 'step_mem_mb')
    return (f"# Gradient checkpointing: SmolLM2-135M, batch {cfg['batch_size']} x {cfg['seq_len']} tokens, {cfg['device']}\n\n`{command}`\n\n"
            f"{env['date_utc']}, {env['cpu']} (flags: {env.get('cpu_flags') or '-'}), {env['cores']} cores, load average "
            f"{env['load_avg_1m']} at start; precision {env.get('precision')}; {cfg['steps']} steps per run (the first not timed), "
            f"medians over {cfg['repeats']} repeat(s). `step_mem_mb` = peak memory - memory before `fit` (same weights, gradients and "
            "optimizer state in both variants: the difference is activation memory).\n\n" + md_table(rows, COLS, nd=2) +
            f"\nWith checkpointing, per repeat: time per step x {', '.join(f'{r:.2f}' for r in t) or '-'}; "
            f"step memory x {', '.join(f'{r:.2f}' for r in m) or '-'}.\n")

def parent(args):
    check_device(args.device)
    cfg = dict(batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps, seed=42, device=args.device,
               threads=args.threads, repeats=args.repeats)
    env = environment()
    print(f"{command_line()}\n{env}\n{cfg}", flush=True)
    results = alternate(SCRIPT, list(RUNNERS), cfg, args.repeats)
    md = report(results, cfg, env, command_line())
    print(md)
    save('checkpointing' + ('_cuda' if args.device == 'cuda' else ''), {'command': command_line(), 'env': env, 'cfg': cfg, 'results': results}, md)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch-size', type=int, default=4); p.add_argument('--seq-len', type=int, default=512)
    p.add_argument('--steps', type=int, default=3); p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--threads', type=int, default=0); p.add_argument('--device', default='cpu')
    main_or_worker(RUNNERS, parent, p)
