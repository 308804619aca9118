"""SmolLM2-135M-Instruct supervised fine-tuning on instruction-formatted Rotten Tomatoes or dialogues: TRL `SFTTrainer` against `sft_nb`.

Data (`--data`): `reviews`: `sft_nb.recipe.rotten_tomatoes_instruct()` (prompt = instruction + review, completion =
'positive'/'negative', ~60 tokens); `dialogues`: consecutive chatterbot pairs (`sft_nb.assets.chat_pairs`) joined into a
dialogue history of 100-400 tokens (prompt) and the next reply (completion). The same `--n-train` examples for
everyone, rendered with the model's chat template, loss on the completion only.
Contenders (batch 8 rows, max length 256, one epoch over the same `--n-train` examples, or `--steps` optimizer
steps, every contender in the same precision: `common.precision_for`, bf16 where the hardware has it natively,
else fp32). A whole epoch is the fair unit: sft_nb's length-grouped loader puts its longest batch first, so
a few steps would compare sft_nb's longest batches with TRL's random ones.
  trl_default    `SFTTrainer` defaults except `bf16=False` (its default bf16=True runs ~140 s/step on this CPU: see
                 `--with-bf16`); note TRL's defaults include gradient checkpointing
  trl_packed     the same with `packing=True` (TRL's best-fit-decreasing packing, padding-free)
  sft_nb         `Learner` on `dataloaders(..., task='causal')` defaults (length-grouped batches), full fine-tuning
  sft_nb_packed  the same with `packing=True`: each batch of 8 examples one unpadded row, attention per example
                 (`sft_nb.loss.varlen_sdpa`)
  sft_nb_packed_mask  `packing='mask'`: rows of max length with a 4-D block-diagonal attention mask
  sft_nb_lora    `apply_lora` defaults (r=8 on every projection), length-grouped batches, lr x10
  sft_nb_full_logits  sft_nb with `TokenLoss(head_on_supervised=False)`: logits for every position, as TRL computes
                 them (opt-in via --contenders; shows what computing the output layer on supervised tokens only saves)
  trl_bf16       (opt-in, `--with-bf16`) TRL's real default (bf16 autocast on CPU), ONE step only
Measured per run (fresh subprocess each): training wall time of the steps, real tokens/s (the examples' own tokens,
no padding), supervised tokens/s (completion tokens that carry a loss), MFU (model FLOPs of the real tokens,
`common.train_flops`, per second, over the best matmul GFLOP/s of this machine in the precision in use,
`common.matmul_gflops`, measured by the parent), padding fraction, peak RSS, last training loss. The parent records what `SFTConfig()` picks for bf16 on this machine, alternates the contenders over
`--repeats`, prints medians and ratios, and saves bench/results/causal.json and .md.

    .venv/bin/python bench/causal.py                  # one epoch over 64 examples, batch 8, max length 256, 1 repeat
    .venv/bin/python bench/causal.py --data dialogues --max-length 512   # the long-example variant
    .venv/bin/python bench/causal.py --device cuda    # bf16 on a GPU
"""
from __future__ import annotations
import argparse, contextlib, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (TokenCounter, alternate, check_device, command_line, device_memory, environment, main_or_worker,
                    matmul_gflops, md_table, median, paired_ratios, param_counts, precision_for, save, train_flops)

SCRIPT = Path(__file__).resolve()

def dialogues(n:int, seed:int, lo:int=100, hi:int=400):
    """`n` dialogues of `lo`-`hi` tokens (SmolLM2 tokenizer) from consecutive chatterbot pairs: the history (alternating
    `User:`/`Assistant:` lines, ending with a user line) is the prompt, the next reply the completion."""
    import random
    from datasets import Dataset
    from sft_nb.assets import chat_pairs
    tok = model_and_tokenizer(tokenizer_only=True)
    pairs, rng, rows, i = chat_pairs(), random.Random(seed), [], 0
    ntok = lambda t: len(tok(t, add_special_tokens=False)['input_ids'])
    while len(rows) < n and i < len(pairs):
        target, hist = rng.randint(lo, hi), []
        while i < len(pairs):
            p, r = pairs[i]['prompt'], pairs[i]['response']; i += 1
            prompt = '\n'.join(hist + [f'User: {p}'])
            if ntok(prompt) + ntok(r) >= target: rows.append({'prompt': prompt, 'completion': r}); break
            hist += [f'User: {p}', f'Assistant: {r}']
    if len(rows) < n: raise SystemExit(f"only {len(rows)} dialogues of {lo}-{hi} tokens in the chat corpus, asked for {n}")
    return Dataset.from_list(rows)

def data(cfg, conversational:bool=False):
    """The same `n_train` training examples for every contender (and a small validation split, so that sft_nb's
    `dataloaders` does not carve one out of them). `conversational`: the same pairs as chat messages, so that TRL
    renders them with the model's chat template as sft_nb does (plain strings would be joined as raw text)."""
    from datasets import DatasetDict
    if cfg.get('data', 'reviews') == 'dialogues':
        d = dialogues(cfg['n_train'] + 16, cfg['seed']).shuffle(seed=cfg['seed'])
        out = DatasetDict(train=d.select(range(cfg['n_train'])), validation=d.select(range(cfg['n_train'], cfg['n_train'] + 16)))
    else:
        from sft_nb.recipe import rotten_tomatoes_instruct
        dsd = rotten_tomatoes_instruct(seed=cfg['seed'])
        out = DatasetDict(train=dsd['train'].shuffle(seed=cfg['seed']).select(range(cfg['n_train'])),
                          validation=dsd['validation'].select(range(16)))
    if conversational:
        out = out.map(lambda e: {'prompt': [{'role': 'user', 'content': e['prompt']}],
                                 'completion': [{'role': 'assistant', 'content': e['completion']}]})
    return out

def model_and_tokenizer(tokenizer_only:bool=False):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from sft_nb.assets import smollm2_path
    p = smollm2_path()
    if tokenizer_only: return AutoTokenizer.from_pretrained(p)
    return AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32), AutoTokenizer.from_pretrained(p)

def record(cfg, counter, train_s, steps, loss, model=None, **extra)->dict:
    st = counter.stats(steps)  # gradient accumulation 1: one batch per step; ignore a prefetched batch
    if model is not None:  # MFU: useful model FLOPs (no padding) per second over the matmul peak the parent measured
        c = model.config
        flops = train_flops(param_counts(model)['non_embedding'], c.num_hidden_layers, c.hidden_size, st['real_tokens'], st['sum_len_sq'])
        extra['tflops_per_s'] = round(flops / train_s / 1e12, 4)
        if cfg.get('peak_gflops'): extra['mfu_pct'] = round(100 * flops / train_s / (cfg['peak_gflops'] * 1e9), 2)
    return {'train_s': round(train_s, 2), 's_per_step': round(train_s / max(steps, 1), 2), 'steps': steps,
            'tokens_per_s': round(st['real_tokens'] / train_s, 1), 'supervised_per_s': round(st['supervised_tokens'] / train_s, 2),
            'padding_pct': st['padding_pct'], 'final_loss': round(loss, 4) if loss is not None else None,
            **device_memory(cfg['device']), **st, **extra}

# ---------------------------------------------------------------- TRL
def run_trl(cfg, packing=False, bf16_default=False)->dict:
    import torch
    from trl import SFTConfig, SFTTrainer
    torch.manual_seed(cfg['seed'])
    model, tok = model_and_tokenizer()
    steps = 1 if bf16_default else cfg['steps'] or -1  # -1: one epoch
    kw = {} if bf16_default else {'bf16': precision_for(cfg['device']) == 'bf16'}
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, num_train_epochs=1, per_device_train_batch_size=cfg['batch_size'],
                     max_length=cfg['max_length'], packing=packing, learning_rate=cfg['lr'], seed=cfg['seed'],
                     logging_steps=1, save_strategy='no', report_to='none', disable_tqdm=True,
                     use_cpu=cfg['device'] == 'cpu', **kw)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data(cfg, conversational=True)['train'], processing_class=tok)
    counter = trainer.data_collator = TokenCounter(trainer.data_collator)
    t = time.perf_counter(); trainer.train(); train_s = time.perf_counter() - t
    losses = [h['loss'] for h in trainer.state.log_history if 'loss' in h]
    return record(cfg, counter, train_s, trainer.state.global_step, losses[-1] if losses else None, model=model,
                  bf16=bool(args.bf16), gradient_checkpointing=bool(args.gradient_checkpointing))

# ---------------------------------------------------------------- sft_nb
def run_sft(cfg, packing=False, lora=False, full_logits=False)->dict:
    import torch
    from sft_nb.core import Callback, CancelFitException
    from sft_nb.batches import dataloaders
    from sft_nb.learner import Learner
    from sft_nb.freeze import apply_lora
    torch.manual_seed(cfg['seed'])
    model, tok = model_and_tokenizer()
    dls = dataloaders(data(cfg), tok, 'causal', batch_size=cfg['batch_size'], max_length=cfg['max_length'],
                      packing=packing, seed=cfg['seed'])
    counter = dls.train.collate_fn = TokenCounter(dls.train.collate_fn)
    if lora: model = apply_lora(model)

    class StopAfter(Callback):
        def after_step(self):
            if cfg['steps'] and self.learn.step >= cfg['steps']: raise CancelFitException()

    from sft_nb.loss import TokenLoss
    learn = Learner(model, dls, cbs=[StopAfter()], lr=cfg['lr'] * (10 if lora else 1), seed=cfg['seed'],
                    loss_func=TokenLoss(head_on_supervised=False) if full_logits else None,
                    precision=precision_for(cfg['device']))
    learn.valid_dl = None  # training throughput only
    with op_profile(cfg.get('profile')) as prof:
        t = time.perf_counter(); learn.fit(1); train_s = time.perf_counter() - t
    return record(cfg, counter, train_s, learn.step, learn.train_losses[-1][1] if learn.train_losses else None, model=model,
                  attention=model.config._attn_implementation, trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
                  **({'profile': prof.top(learn.step)} if prof else {}))

class _OpProfile:
    "torch's profiler over a run, summarised as the operators that take its time (self CPU time, per optimizer step)."
    def __init__(self):
        from torch.profiler import profile, ProfilerActivity
        self.p = profile(activities=[ProfilerActivity.CPU])
    def top(self, steps:int, n:int=12)->list[dict]:
        ev = sorted(self.p.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ev) or 1
        return [{'op': e.key, 'share_pct': round(100 * e.self_cpu_time_total / total, 1), 'calls_per_step': round(e.count / max(steps, 1), 1),
                 'ms_per_step': round(e.self_cpu_time_total / 1e3 / max(steps, 1), 1)} for e in ev[:n]]

@contextlib.contextmanager
def op_profile(on:bool):
    "Yield an `_OpProfile` recording the block when `on`, else None (profiling slows the run: its times are not compared)."
    if not on: yield None; return
    prof = _OpProfile()
    with prof.p: yield prof

RUNNERS = {'trl_default': run_trl, 'trl_packed': lambda c: run_trl(c, packing=True),
           'trl_bf16': lambda c: run_trl(c, bf16_default=True),
           'sft_nb': run_sft, 'sft_nb_packed': lambda c: run_sft(c, packing=True),
           'sft_nb_packed_mask': lambda c: run_sft(c, packing='mask'),
           'sft_nb_lora': lambda c: run_sft(c, lora=True),
           'sft_nb_full_logits': lambda c: run_sft(c, full_logits=True)}

COLS = ['contender', 'train_s', 'examples_per_s', 's_per_step', 'tokens_per_s', 'mfu_pct', 'supervised_per_s', 'padding_pct', 'examples', 'peak_rss_mb', 'final_loss']

def report(results, names, cfg, env, command)->str:
    "The markdown tables: medians, and per-repeat ratios of sft_nb contenders to TRL's."
    for r in results:  # every contender trains the same examples: examples/s is the same-work rate
        if 'error' not in r: r['examples_per_s'] = round(r['examples'] / r['train_s'], 3)
    rows = [{'contender': n, **{k: median(results, n, k) for k in COLS[1:]}} for n in names]
    ratios = ["| ratio (per repeat) | vs trl_default | vs trl_packed | vs sft_nb (unpacked) |\n|---|---|---|---|"]
    for a in [n for n in names if n.startswith('sft')]:
        for key, lab in (('examples_per_s', 'examples/s (same work)'), ('supervised_per_s', 'supervised tok/s (own count)'),
                         ('tokens_per_s', 'real tok/s'), ('peak_rss_mb', 'peak RSS')):
            ratios.append(f"| {a} {lab} | " + ' | '.join(', '.join(f"{r:.2f}" for r in paired_ratios(results, a, b, key)) or '-'
                                                         for b in ('trl_default', 'trl_packed', 'sft_nb')) + ' |')
    work = f"{cfg['steps']} optimizer steps" if cfg['steps'] else "one epoch"
    what = 'dialogues of 100-400 tokens (chatterbot pairs)' if cfg.get('data') == 'dialogues' else 'Rotten Tomatoes instructions'
    return (f"# causal SFT benchmark: SmolLM2-135M, {what}\n\n`{command}`\n\n"
            f"{env['date_utc']}, {env['cpu']} (flags: {env.get('cpu_flags') or 'none of avx2/avx512/amx'}), {env['cores']} cores, "
            f"load average {env['load_avg_1m']} at start (shared machine: other jobs ran beside this one; compare ratios within the run). "
            f"Precision of every contender: {env.get('precision')}; matmul peak in it: {cfg.get('peak_gflops')} GFLOP/s (MFU denominator). "
            f"{cfg['n_train']} examples, {work} of {cfg['batch_size']}-row batches, max length {cfg['max_length']}, "
            f"lr {cfg['lr']} (LoRA x10), {cfg['device']}. TRL's `SFTConfig()` default bf16 on this machine: {env.get('trl_default_bf16_here')} "
            f"(`--with-bf16` times one such step); `SFTConfig()` with no arguments here: {env.get('trl_sftconfig_no_args')}\n\n"
            "Supervised tokens are counted as each library builds its labels: TRL also supervises the newline the chat "
            "template writes after `<|im_end|>`, so its count is higher for the same examples; examples/s compares equal work.\n\n"
            f"Medians over {len({r['repeat'] for r in results})} repeat(s).\n\n" + md_table(rows, COLS) + '\n' + '\n'.join(ratios) + '\n'
            + profile_md(results, names))

def profile_md(results, names)->str:
    "With `--profile`: per sft_nb contender, the operators its steps spent their time in (first repeat), the top one named."
    out = []
    for n in names:
        r = next((r for r in results if r['name'] == n and r.get('profile')), None)
        if r is None: continue
        top = r['profile']
        out.append(f"\n## Where {n}'s step goes (torch profiler, self CPU time; the profiled run is not timed)\n\n"
                   f"Limiting operation: `{top[0]['op']}`, {top[0]['share_pct']}% of the step.\n\n"
                   + md_table(top, ['op', 'share_pct', 'calls_per_step', 'ms_per_step'], nd=1))
    return '\n'.join(out)

def parent(args):
    if args.report:
        import json
        d = json.load(open(args.report))
        print(report(d['results'], list(dict.fromkeys(r['name'] for r in d['results'])), d['cfg'], d['env'], d['command'])); return
    check_device(args.device)
    cfg = dict(n_train=args.n_train, steps=args.steps, batch_size=args.batch_size, max_length=args.max_length, lr=args.lr,
               seed=args.seed, device=args.device, threads=args.threads, data=args.data, profile=args.profile)
    import torch
    if args.threads: torch.set_num_threads(args.threads)
    cfg['peak_gflops'] = round(matmul_gflops(), 1)
    names = args.contenders.split(',') + (['trl_bf16'] if args.with_bf16 else [])
    env = environment()
    if any(n.startswith('trl') for n in names):  # TRL is only installed with `tools/setup.sh bench`
        from trl import SFTConfig
        try: SFTConfig(output_dir=tempfile.mkdtemp()); env['trl_sftconfig_no_args'] = 'ok'
        except ValueError as e: env['trl_sftconfig_no_args'] = f'ValueError: {e}'  # bf16 default without a GPU
        env['trl_default_bf16_here'] = bool(SFTConfig(output_dir=tempfile.mkdtemp(), use_cpu=args.device == 'cpu').bf16)
    print(f"{command_line()}\n{env}\n{cfg}", flush=True)
    name = 'causal' + ('_dialogues' if args.data == 'dialogues' else '') + ('_cuda' if args.device == 'cuda' else '') + (f'_{args.tag}' if args.tag else '')
    results = alternate(SCRIPT, names, cfg, args.repeats, partial=name)
    md = report(results, names, cfg, env, command_line())
    print(md)
    save(name, {'command': command_line(), 'env': env, 'cfg': cfg, 'results': results}, md)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-train', type=int, default=64)
    p.add_argument('--steps', type=int, default=0, help='optimizer steps per run (0: one epoch over --n-train examples, the same work for all)')
    p.add_argument('--batch-size', type=int, default=8); p.add_argument('--max-length', type=int, default=256)
    p.add_argument('--lr', type=float, default=2e-5); p.add_argument('--seed', type=int, default=42)
    p.add_argument('--repeats', type=int, default=1); p.add_argument('--threads', type=int, default=0)
    p.add_argument('--contenders', default='trl_default,trl_packed,sft_nb,sft_nb_packed,sft_nb_packed_mask,sft_nb_lora')
    p.add_argument('--data', default='reviews', choices=['reviews', 'dialogues'], help='short reviews, or dialogues of 100-400 tokens')
    p.add_argument('--tag', default='', help='suffix of the results file name')
    p.add_argument('--with-bf16', action='store_true', help="add one step of TRL's default bf16 (slow on CPUs without bf16)")
    p.add_argument('--device', default='cpu')
    p.add_argument('--report', help='print the tables of a saved results JSON and exit')
    p.add_argument('--profile', action='store_true', help="profile sft_nb contenders' steps by operator (use a separate run: it slows them)")
    main_or_worker(RUNNERS, parent, p)
