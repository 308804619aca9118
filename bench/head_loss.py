"""The supervised-token loss of causal LMs: `sft_nb.loss.chunked_cross_entropy` (each chunk's gradients computed in its
forward pass) against recomputing each chunk in backward (`torch.utils.checkpoint`, the library's first version, kept
here as the reference), in whole training epochs of SmolLM2-135M-Instruct.

One process, one model and optimizer, the two losses swapped in between epochs and alternated (A B, B A, ...), so
that both see the same machine; the first epoch (page faults, kernel set-up) is not timed. bf16 where the CPU has it
natively, else fp32. Data as `causal.py`: `--data dialogues` (100-400 tokens, long replies: many supervised tokens)
or `reviews` (one-word completions). Prints each epoch, the medians, and the last losses of each variant.

    .venv/bin/python bench/head_loss.py --data dialogues --n-train 32 --repeats 4
"""
from __future__ import annotations
import argparse, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, environment, precision_for, save

class RecomputeInBackward:
    "The reference in `_LinearCrossEntropy`'s place: each chunk's loss checkpointed and recomputed in backward, as first written."
    @staticmethod
    def apply(h, w, b, y, chunk_size:int, label_smoothing:float):
        import torch, torch.nn.functional as F
        from torch.utils.checkpoint import checkpoint
        def chunk_loss(hs, w, b, ys):
            logits = (hs @ w.t()).float()
            if b is not None: logits = logits + b.float()
            return F.cross_entropy(logits, ys, label_smoothing=label_smoothing, reduction='sum')
        total = h.new_zeros((), dtype=torch.float32)
        for s in range(0, len(y), chunk_size):
            total = total + checkpoint(chunk_loss, h[s:s + chunk_size], w, b, y[s:s + chunk_size], use_reentrant=False)
        return total

def main(args):
    import torch
    import sft_nb.loss as loss_module
    from sft_nb.batches import dataloaders
    from sft_nb.learner import Learner
    from causal import data, model_and_tokenizer
    cfg = dict(n_train=args.n_train, seed=42, data=args.data)
    torch.manual_seed(42)
    model, tok = model_and_tokenizer()
    dls = dataloaders(data(cfg), tok, 'causal', batch_size=8, max_length=512, packing=args.packing, seed=42)
    # `chunked_cross_entropy` keeps its shifting, filtering and normalising; only the per-chunk work is swapped
    variants = {'gradients in forward (sft_nb)': loss_module._LinearCrossEntropy, 'recompute in backward': RecomputeInBackward}
    learn = Learner(model, dls, lr=2e-5, seed=42, precision=precision_for('cpu'), progress=False)
    learn.valid_dl = None
    env, out = environment(), []
    say = lambda line: (print(line, flush=True), out.append(line))
    say(f"{env['date_utc']}, {env['cpu']} ({env['cpu_flags']}), {env['cores']} cores, load {env['load_avg_1m']}, "
          f"precision {env['precision']}; SmolLM2 on {args.n_train} {args.data}, packing={args.packing}")
    learn.fit(1)  # untimed: first-touch page faults and kernel set-up
    times, losses, names = {k: [] for k in variants}, {}, list(variants)
    try:
        for r in range(args.repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                loss_module._LinearCrossEntropy = variants[name]
                t = time.perf_counter(); learn.fit(1); times[name].append(time.perf_counter() - t)
                losses[name] = learn.train_losses[-1][1]
                say(f"  {name}: {times[name][-1]:.2f} s")
    finally: loss_module._LinearCrossEntropy = variants[names[0]]
    for name, ts in times.items(): say(f"{name}: median epoch {statistics.median(ts):.2f} s ({', '.join(f'{t:.2f}' for t in ts)})")
    a, b = (statistics.median(times[n]) for n in names)
    say(f"speed-up of gradients in forward: {b / a:.3f}x")
    save(f"head_loss_{args.data}{args.tag}", {'env': env, 'args': vars(args), 'times': times, 'last_loss': losses},
         f"# The supervised-token loss: gradients in forward against recompute\n\n`{command_line()}`\n\n" + '\n'.join(f"    {l}" for l in out) + '\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='dialogues', choices=['dialogues', 'reviews'])
    p.add_argument('--n-train', type=int, default=32); p.add_argument('--repeats', type=int, default=4)
    p.add_argument('--tag', default='', help='suffix of the results file name')
    p.add_argument('--packing', action=argparse.BooleanOptionalAction, default=True, help='padding-free batches (default) or padded')
    main(p.parse_args())
