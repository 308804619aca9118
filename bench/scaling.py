"""How `sft_nb`'s time and memory grow with the dataset, the sequence length and the evaluation set (MiniLM).

Three sweeps, one fresh subprocess per point (so peak RSS belongs to that point alone):
  data   n training examples (1k, 2k, 5k, 10k; `--quick`: 1k, 2k, 4k): seconds to load + tokenize + build the
         data loaders (the part that grows with n), training samples/s over `--steps` optimizer steps (or whole
         epochs with `--full-epoch`), the projected epoch time (setup + n / samples/s) and peak RSS.
         Linear scaling means constant samples/s and flat RSS.
  seq    max length L (64, 128, 256, 512): rows of L tokens made by joining reviews, batch 8, `--steps` steps:
         seconds per step, tokens/s and peak RSS (attention makes tokens/s fall slowly as L grows).
  eval   n evaluation examples (1k, 10k; `--quick`: 1k, 4k): `learn.validate()` time and the RSS it adds
         (peak after validation minus RSS before it); target: growth <= 5% from the smallest to the largest set.
Results: bench/results/scaling[_quick].json and .md.

    .venv/bin/python bench/scaling.py [--quick] [--sweeps data,seq,eval] [--device cuda]
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (TokenCounter, check_device, command_line, device_memory, environment, main_or_worker, md_table,
                    precision_for, run_worker, save, peak_rss_mb)

SCRIPT = Path(__file__).resolve()

def tokenizer():
    from transformers import AutoTokenizer
    from sft_nb.assets import minilm_path
    return AutoTokenizer.from_pretrained(minilm_path())

def rt(cfg):
    from sft_nb.assets import rotten_tomatoes
    return rotten_tomatoes(seed=cfg['seed'])

def learner(cfg, dls, steps=None):
    import torch
    from sft_nb.core import Callback, CancelFitException
    from sft_nb.learner import Learner
    from sft_nb.models import load_model
    from sft_nb.metrics import Accuracy
    torch.manual_seed(cfg['seed'])
    class StopAfter(Callback):
        def after_step(self):
            if steps and self.learn.step >= steps: raise CancelFitException()
    return Learner(load_model('minilm', 'classification', num_labels=2), dls, metrics=[Accuracy()], cbs=[StopAfter()],
                   lr=1e-4, seed=cfg['seed'], precision=precision_for(cfg['device']))

def run_data(cfg)->dict:
    "Setup time, throughput and peak RSS for `n` training examples."
    from types import SimpleNamespace
    from datasets import DatasetDict
    from sft_nb.batches import dataloaders
    tok, full = tokenizer(), rt(cfg)
    t = time.perf_counter()
    n = cfg['n']
    train = full['train'].shuffle(seed=cfg['seed']).select(range(min(n, len(full['train']))))
    dls = dataloaders(DatasetDict(train=train, validation=full['validation'].select(range(32))), tok, 'classification',
                      batch_size=32, max_length=48, seed=cfg['seed'], cache=False)
    setup_s = time.perf_counter() - t
    counter = dls.train.collate_fn = TokenCounter(dls.train.collate_fn)
    learn = learner(cfg, SimpleNamespace(train=dls.train, valid=None), None if cfg['full_epoch'] else cfg['steps'])
    t = time.perf_counter(); learn.fit(1); train_s = time.perf_counter() - t
    st = counter.stats(learn.step)  # one batch per step; a prefetched batch is not trained on
    sps = st['examples'] / train_s
    return {'n': len(train), 'setup_s': round(setup_s, 2), 'train_s': round(train_s, 2), 'steps': learn.step,
            'samples_per_s': round(sps, 2), 'epoch_s_projected': round(setup_s + len(train) / sps, 1),
            'padding_pct': st['padding_pct'], **device_memory(cfg['device'])}

def run_seq(cfg)->dict:
    "Seconds per step, tokens/s and peak RSS at max length L (rows of joined reviews, all L tokens long)."
    from types import SimpleNamespace
    from datasets import Dataset, DatasetDict, ClassLabel, Features, Value
    from sft_nb.batches import dataloaders
    tok, full = tokenizer(), rt(cfg)
    L, bs = cfg['L'], 8
    rows = (cfg['steps'] + 1) * bs
    texts, labels = full['train']['text'], full['train']['label']
    per = max(1, L // 12)  # reviews average ~25 tokens: enough of them to pass L tokens
    joined = [' '.join(texts[i * per:(i + 1) * per]) for i in range(rows)]
    ds = Dataset.from_dict({'text': joined, 'label': labels[:rows]},
                           features=Features({'text': Value('string'), 'label': ClassLabel(names=['negative', 'positive'])}))
    dls = dataloaders(DatasetDict(train=ds, validation=ds.select(range(bs))), tok, 'classification', batch_size=bs, max_length=L,
                      seed=cfg['seed'], cache=False)
    counter = dls.train.collate_fn = TokenCounter(dls.train.collate_fn)
    learn = learner(cfg, SimpleNamespace(train=dls.train, valid=None), cfg['steps'])
    t = time.perf_counter(); learn.fit(1); train_s = time.perf_counter() - t
    st = counter.stats(learn.step)
    return {'L': L, 'batch': bs, 'steps': learn.step, 'mean_len': round(st['real_tokens'] / max(st['examples'], 1), 1),
            's_per_step': round(train_s / learn.step, 2), 'tokens_per_s': round(st['real_tokens'] / train_s, 1),
            **device_memory(cfg['device'])}

def run_eval(cfg)->dict:
    "Validation time and the memory it adds, for `n` evaluation examples."
    from types import SimpleNamespace
    from datasets import DatasetDict, concatenate_datasets
    from sft_nb.core import rss_mb
    from sft_nb.batches import dataloaders
    tok, full = tokenizer(), rt(cfg)
    pool = concatenate_datasets([full['validation'], full['test'], full['train']])
    ev = pool.select(range(min(cfg['n'], len(pool))))
    dls = dataloaders(DatasetDict(train=full['train'].select(range(64)), validation=ev), tok, 'classification',
                      batch_size=32, max_length=48, seed=cfg['seed'], cache=False)
    learn = learner(cfg, dls)
    from torch.utils.data import DataLoader
    learn.validate(DataLoader(dls.valid.dataset.select(range(64)), batch_size=64, collate_fn=dls.valid.collate_fn))  # warm-up
    before = rss_mb(); peak_before = peak_rss_mb()
    t = time.perf_counter(); res = learn.validate(); eval_s = time.perf_counter() - t
    return {'n': len(ev), 'eval_s': round(eval_s, 2), 'samples_per_s': round(len(ev) / eval_s, 1), 'accuracy': round(res['accuracy'], 4),
            'rss_before_mb': round(before, 1), 'peak_rss_mb': round(peak_rss_mb(), 1),
            'eval_added_mb': round(max(peak_rss_mb(), peak_before) - before, 1), **device_memory(cfg['device'])}

RUNNERS = {'data': run_data, 'seq': run_seq, 'eval': run_eval}

def parent(args):
    check_device(args.device)
    base = dict(seed=args.seed, device=args.device, steps=args.steps, full_epoch=args.full_epoch, threads=args.threads)
    points = {'data': [('n', n) for n in ([1000, 2000, 4000] if args.quick else [1000, 2000, 5000, 10000])],
              'seq': [('L', L) for L in [64, 128, 256, 512]],
              'eval': [('n', n) for n in ([1000, 4000] if args.quick else [1000, 10000])]}
    env = environment()
    print(f"{command_line()}\n{env}\n{base}", flush=True)
    out, md = {}, [f"# scaling benchmark (sft_nb, MiniLM)\n\n`{command_line()}`\n\n{env['date_utc']}, {env['cpu']}, {env['cores']} cores, "
                   f"load average {env['load_avg_1m']} at start (shared machine).\n"]
    for sweep in args.sweeps.split(','):
        rows = []
        for k, v in points[sweep]:
            r = run_worker(SCRIPT, sweep, {**base, k: v}); rows.append(r)
            print(f"  {sweep} {k}={v}: {r}", flush=True)
        out[sweep] = rows
        ok = [r for r in rows if 'error' not in r]
        if not ok: md.append(f"\n## {sweep}: failed\n\n{rows[0].get('error', '')[-500:]}\n"); continue
        cols = [c for c in ok[0] if c not in ('name', 'process_s')]
        md.append(f"\n## {sweep}\n\n" + md_table(ok, cols))
        if sweep == 'eval' and len(ok) > 1:
            g = 100 * (ok[-1]['eval_added_mb'] - ok[0]['eval_added_mb']) / ok[0]['peak_rss_mb']
            gp = 100 * (ok[-1]['peak_rss_mb'] - ok[0]['peak_rss_mb']) / ok[0]['peak_rss_mb']
            md.append(f"\nPeak RSS growth from {ok[0]['n']:,} to {ok[-1]['n']:,} evaluation examples: {gp:+.1f}% "
                      f"(memory added by validation: {ok[0]['eval_added_mb']} -> {ok[-1]['eval_added_mb']} MB, {g:+.1f}% of peak). Target <= 5%.\n")
        if sweep == 'data' and len(ok) > 1:
            md.append(f"\nSamples/s from {ok[0]['n']:,} to {ok[-1]['n']:,} examples: {ok[0]['samples_per_s']} -> {ok[-1]['samples_per_s']}; "
                      f"peak RSS {ok[0]['peak_rss_mb']} -> {ok[-1]['peak_rss_mb']} MB.\n")
        save('scaling' + ('_quick' if args.quick else '') + ('_cuda' if args.device == 'cuda' else ''),  # after each sweep
             {'command': command_line(), 'env': env, 'cfg': base, 'results': out}, '\n'.join(md))
    print('\n'.join(md))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true'); p.add_argument('--sweeps', default='data,seq,eval')
    p.add_argument('--steps', type=int, default=8, help='optimizer steps per point (data, seq)')
    p.add_argument('--full-epoch', action='store_true', help='data sweep: train a whole epoch instead of --steps')
    p.add_argument('--seed', type=int, default=42); p.add_argument('--threads', type=int, default=0)
    p.add_argument('--device', default='cpu')
    main_or_worker(RUNNERS, parent, p)
