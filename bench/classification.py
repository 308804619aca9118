"""MiniLM sentiment classification on Rotten Tomatoes: Hugging Face `Trainer` against `sft_nb`.

Contenders (same examples, epochs, learning rate, batch size, max length, seed):
  hf_default   `Trainer` with its defaults (random batches, fused AdamW, linear schedule, no warm-up, wd 0)
  hf_grouped   the same with `train_sampling_strategy="group_by_length"` (HF's length grouping)
  sft_nb       `Learner` on `sft_nb.batches.dataloaders(...)` with their defaults (length-grouped batches, fused AdamW,
               CPU dropout masks, linear schedule with 10% warm-up, wd 0.01, clip 1.0); validated at each epoch end
               (and every `--eval-every` steps) as by default, validation time subtracted
  sft_nb_fast  (opt-in, `--fast`) sft_nb with `freeze_word_embeddings(model)` (`freeze: embeddings` in a run config)
  sft_nb_hf_recipe (opt-in, via --contenders) sft_nb with HF's recipe: no warm-up, no weight decay
  sft_nb_random (opt-in, via --contenders) sft_nb with random batches (`group_by_length=False`): what grouping costs
  sft_nb_free  (opt-in, via --contenders) sft_nb with random padding-free batches (`packing=True`): one unpadded row per
               batch, attention per example, the pooler on each example's first token
  sft_nb_tta   (opt-in, `--tta`) sft_nb trained for `--tta-epochs` (1) at `--tta-lr` (2e-4, or 'slice(HI)')

Each run is a fresh subprocess (peak RSS per run) and the contenders alternate (ABC, CBA, ...) in one
invocation. Measured per run: training wall time (only `trainer.train()` / `learn.fit()`, with validation passes
subtracted), training samples/s and real (non-padding) tokens/s, padding fraction of the training batches, peak
RSS, validation accuracy, and model FLOP utilisation (MFU): `common.train_flops` (6 x non-embedding params x real
tokens + 12 x layers x hidden x sum(len^2)) / training time / the fp32 matmul peak measured in the same process
just before and after training (a 960x384x1536 matmul, the best of the two). The parent prints medians and the
sft_nb / HF ratios of each repeat (adjacent runs), and saves bench/results/classification[_quick].json and .md.

    .venv/bin/python bench/classification.py                 # reference: 1,000 examples, 2 epochs, 2 repeats
    .venv/bin/python bench/classification.py --quick         # 300 examples, 1 epoch, 1 repeat (smoke test)
    .venv/bin/python bench/classification.py --device cuda   # same comparison in bf16 on a GPU
    .venv/bin/python bench/classification.py --data length3,rt --contenders hf_default,hf_grouped,sft_nb,sft_nb_free --vary-seed --repeats 4

Every contender trains in the same precision, `sft_nb.core.default_precision()`: bf16 on a CPU with native bf16,
fp32 on one without (`SFT_NB_PRECISION=no` runs the fp32 comparison on a bf16 machine). The tables name the CPU, its
relevant flags and the precision. Accuracy and macro-F1 are reported per repeat.
"""
from __future__ import annotations
import argparse, os, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (TokenCounter, alternate, check_device, command_line, device_memory, environment, main_or_worker,
                    matmul_gflops, md_table, median, paired_ratios, param_counts, precision_for, save, train_flops, fmt)

SCRIPT = Path(__file__).resolve()

def splits(cfg):
    "The same train subset and validation examples for every contender (`--data rt`: the bundled reviews; `length3`: `sft_nb.assets.length_correlated_reviews`)."
    from datasets import DatasetDict
    from sft_nb.assets import rotten_tomatoes, length_correlated_reviews
    if cfg.get('data', 'rt') == 'length3':
        return DatasetDict(train=length_correlated_reviews(cfg['n_train'], cfg['seed']),
                           validation=length_correlated_reviews(cfg['n_valid'], cfg['seed'] + 1, split='validation'))
    dsd = rotten_tomatoes(seed=cfg['seed'])
    train = dsd['train'].shuffle(seed=cfg['seed']).select(range(cfg['n_train']))
    return DatasetDict(train=train, validation=dsd['validation'].select(range(cfg['n_valid'])))

def macro_f1(pred, labels)->float:
    from sklearn.metrics import f1_score
    return float(f1_score(labels, pred, average='macro'))

def parse_lr(lr):
    "A float, or 'slice(HI)' / 'slice(LO,HI)' for `Learner`'s per-layer-group learning rates."
    if isinstance(lr, str) and lr.startswith('slice('): return slice(*[float(x) for x in lr[6:-1].split(',')])
    return float(lr)

def train_seed(cfg): return cfg.get('train_seed', cfg['seed'])

def tokenizer():
    from transformers import AutoTokenizer
    from sft_nb.assets import minilm_path
    return AutoTokenizer.from_pretrained(minilm_path())

def finish(cfg, model, counter, train_s, acc, peak_before, curve=None, **extra)->dict:
    "The result record of one run."
    c, st = model.config, counter.stats()
    pc = param_counts(model)
    peak = max(peak_before, matmul_gflops())
    flops = train_flops(pc['non_embedding'], c.num_hidden_layers, c.hidden_size, st['real_tokens'], st['sum_len_sq'])
    return {'train_s': round(train_s, 2), 'samples_per_s': round(st['examples'] / train_s, 2),
            'tokens_per_s': round(st['real_tokens'] / train_s, 1), 'padding_pct': st['padding_pct'], 'accuracy': round(acc, 4),
            'matmul_gflops': round(peak, 1), 'achieved_gflops': round(flops / train_s / 1e9, 1),
            'mfu_pct': round(100 * flops / train_s / 1e9 / peak, 1), **device_memory(cfg['device']),
            'trainable_params': pc['trainable'], 'curve': curve or [], **st, **extra}

# ---------------------------------------------------------------- Hugging Face Trainer
def run_hf(cfg, grouped:bool)->dict:
    import numpy as np, torch
    from transformers import (AutoModelForSequenceClassification, Trainer, TrainingArguments, DataCollatorWithPadding, set_seed)
    from sft_nb.assets import minilm_path
    tok, dsd = tokenizer(), splits(cfg)
    tds = dsd.map(lambda b: tok(b['text'], truncation=True, max_length=cfg['max_length']), batched=True, remove_columns=['text'])
    set_seed(train_seed(cfg))
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=dsd['train'].features['label'].num_classes)
    prec = precision_for(cfg['device'])
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), num_train_epochs=cfg['epochs'], learning_rate=cfg['lr'],
                             per_device_train_batch_size=cfg['batch_size'], per_device_eval_batch_size=2 * cfg['batch_size'],
                             seed=train_seed(cfg), report_to='none', save_strategy='no', disable_tqdm=True,
                             train_sampling_strategy='group_by_length' if grouped else 'random',
                             use_cpu=cfg['device'] == 'cpu', bf16=prec == 'bf16', fp16=prec == 'fp16')
    counter = TokenCounter(DataCollatorWithPadding(tok))
    trainer = Trainer(model=model, args=args, train_dataset=tds['train'], data_collator=counter)
    peak = matmul_gflops()
    t = time.perf_counter(); trainer.train(); train_s = time.perf_counter() - t
    counter.active = False
    pred = trainer.predict(tds['validation'])
    yhat = np.argmax(pred.predictions, -1)
    acc = float((yhat == pred.label_ids).mean())
    return finish(cfg, model, counter, train_s, acc, peak, curve=[[round(train_s, 2), acc]], macro_f1=round(macro_f1(yhat, pred.label_ids), 4),
                  precision=prec)

# ---------------------------------------------------------------- sft_nb
def run_sft(cfg, freeze_emb:bool=False, tta:bool=False, hf_recipe:bool=False, grouped:bool=True, packing:bool=False)->dict:
    import torch
    from sft_nb.core import Callback
    from sft_nb.batches import dataloaders
    from sft_nb.learner import Learner
    from sft_nb.models import load_model
    from sft_nb.freeze import freeze_word_embeddings
    from sft_nb.metrics import Accuracy, F1
    tok, dsd = tokenizer(), splits(cfg)
    dls = dataloaders(dsd, tok, 'classification', batch_size=cfg['batch_size'], max_length=cfg['max_length'], seed=train_seed(cfg),
                      group_by_length=grouped, packing=packing)
    counter = dls.train.collate_fn = TokenCounter(dls.train.collate_fn)
    torch.manual_seed(train_seed(cfg))
    model = load_model('minilm', 'classification', id2label=dls.id2label)
    kw = dict(warmup=0., wd=0.) if hf_recipe else {}
    if freeze_emb: freeze_word_embeddings(model)

    class EvalClock(Callback):
        "Take validation passes out of the training time, and record (training seconds, accuracy) after each."
        def before_fit(self): self.t0, self.eval_s, self.curve = time.perf_counter(), 0., []
        def before_validate(self): self.t = time.perf_counter()
        def after_validate(self):
            now = time.perf_counter(); self.eval_s += now - self.t
            self.curve.append([round(now - self.t0 - self.eval_s, 2), self.learn.valid_res.get('accuracy')])

    clock = EvalClock()
    lr, epochs = (parse_lr(cfg['tta_lr']), cfg['tta_epochs']) if tta else (cfg['lr'], cfg['epochs'])
    learn = Learner(model, dls, metrics=[Accuracy(), F1(average='macro', name='macro_f1')], cbs=[clock], lr=lr, seed=train_seed(cfg),
                    precision=precision_for(cfg['device']), eval_every=cfg.get('eval_every'), progress=False, **kw)
    peak = matmul_gflops()
    t = time.perf_counter(); learn.fit(epochs); train_s = time.perf_counter() - t - clock.eval_s
    return finish(cfg, model, counter, train_s, clock.curve[-1][1], peak, curve=clock.curve, eval_s=round(clock.eval_s, 1),
                  macro_f1=round(learn.history[-1]['macro_f1'], 4), precision=learn.precision)

RUNNERS = {'hf_default': lambda c: run_hf(c, False), 'hf_grouped': lambda c: run_hf(c, True),
           'sft_nb': run_sft, 'sft_nb_fast': lambda c: run_sft(c, freeze_emb=True),
           'sft_nb_tta': lambda c: run_sft(c, tta=True),
           'sft_nb_hf_recipe': lambda c: run_sft(c, hf_recipe=True),
           'sft_nb_random': lambda c: run_sft(c, grouped=False),
           'sft_nb_free': lambda c: run_sft(c, grouped=False, packing=True)}

# ---------------------------------------------------------------- parent
COLS = ['contender', 'precision', 'train_s', 'samples_per_s', 'tokens_per_s', 'padding_pct', 'accuracy', 'macro_f1', 'peak_rss_mb', 'mfu_pct', 'matmul_gflops']

def time_to(curve, target):
    "Training seconds at the first evaluation reaching `target` accuracy (None if never)."
    return next((t for t, a in curve if a is not None and a >= target - 1e-9), None)

def report(results, names, cfg, args)->str:
    prec = lambda n: next((r.get('precision') for r in results if r['name'] == n and 'error' not in r), None)
    rows = [{'contender': n, 'precision': prec(n), **{k: median(results, n, k) for k in COLS[2:]}} for n in names]
    data = {'rt': 'Rotten Tomatoes (2 classes)', 'length3': 'length-correlated 3-class reviews (rare class 8%, ~6x longer)'}[cfg.get('data', 'rt')]
    out = [f"## MiniLM / {data}: {cfg['n_train']} train examples, {cfg['epochs']} epochs, batch {cfg['batch_size']}, "
           f"max length {cfg['max_length']}, lr {cfg['lr']}, {cfg['device']}, {args.repeats} repeat(s) alternated\n",
           "Medians over repeats.\n", md_table(rows, COLS)]
    seeds = sorted({r['repeat'] for r in results if 'error' not in r})
    per = ["\nAccuracy / macro-F1 per repeat (training seed " + ('seed + repeat' if cfg.get('vary_seed') else 'fixed') + "):\n",
           "| contender | " + ' | '.join(f"repeat {s}" for s in seeds) + " | mean |\n|---|" + '---|' * (len(seeds) + 1)]
    for n in names:
        rs = {r['repeat']: r for r in results if r['name'] == n and 'error' not in r}
        cells = [f"{rs[s]['accuracy']:.3f} / {rs[s].get('macro_f1', float('nan')):.3f}" if s in rs else '-' for s in seeds]
        accs, f1s = [r['accuracy'] for r in rs.values()], [r.get('macro_f1', float('nan')) for r in rs.values()]
        mean = f"{sum(accs) / len(accs):.3f} / {sum(f1s) / len(f1s):.3f}" if accs else '-'
        per.append(f"| {n} | " + ' | '.join(cells) + f" | {mean} |")
    out.append('\n'.join(per) + '\n')
    hf_acc = median(results, 'hf_default', 'accuracy')
    hf_s = median(results, 'hf_default', 'train_s')
    lines = ["\n| ratio (per repeat) | " + ' | '.join(f"vs {b}" for b in ('hf_default', 'hf_grouped')) + " |\n|---|---|---|"]
    for a in [n for n in names if n.startswith('sft')]:
        for key, lab in (('samples_per_s', 'samples/s'), ('peak_rss_mb', 'peak RSS'), ('accuracy', 'accuracy'), ('macro_f1', 'macro-F1')):
            cells = [', '.join(f"{r:.2f}" for r in paired_ratios(results, a, b, key)) or '-' for b in ('hf_default', 'hf_grouped')]
            lines.append(f"| {a} {lab} | " + ' | '.join(cells) + ' |')
    out.append('\n'.join(lines) + '\n')
    if hf_acc is not None and hf_s:
        # per repeat (same seed): training seconds until the contender's first evaluation at or above that repeat's
        # hf_default accuracy, as a fraction of that hf_default run's training time
        hf = {r['repeat']: r for r in results if r['name'] == 'hf_default' and 'error' not in r}
        rows = []
        for n in names:
            fr, fm = [], []
            for r in results:
                if r['name'] != n or 'error' in r or r['repeat'] not in hf: continue
                h = hf[r['repeat']]
                t = time_to(r['curve'], h['accuracy']); fr.append('-' if t is None else f"{t / h['train_s']:.2f}")
                t = time_to(r['curve'], hf_acc); fm.append('-' if t is None else f"{t / hf_s:.2f}")
            rows.append(f"| {n} | {', '.join(fr)} | {', '.join(fm)} |")
        out.append(f"\nTime to accuracy: training seconds until the first evaluation reaching hf_default's accuracy, as a fraction of "
                   f"hf_default's training time; per repeat against the same repeat's hf_default run (same seed), and against "
                   f"hf_default's median accuracy ({hf_acc:.3f}) and median time ({hf_s:.1f} s). '-': not reached. Target <= 0.6.\n\n"
                   "| contender | same repeat | median |\n|---|---|---|\n" + '\n'.join(rows) + '\n')
    return '\n'.join(out)

def parent(args):
    if args.report:  # re-render the tables from a saved (possibly partial) results file
        import json
        d = json.load(open(args.report)); cfg = d['cfg']
        names = list(dict.fromkeys(r['name'] for r in d['results']))
        args.repeats = len({r['repeat'] for r in d['results']})
        print(report(d['results'], names, cfg, args)); return
    if args.quick: args.n_train, args.epochs, args.repeats = min(args.n_train, 300), 1, 1
    check_device(args.device)
    cfg = dict(n_train=args.n_train, n_valid=args.n_valid, epochs=args.epochs, max_length=args.max_length, batch_size=args.batch_size,
               lr=args.lr, seed=args.seed, device=args.device, threads=args.threads, data=args.data,
               vary_seed=args.vary_seed, eval_every=args.eval_every, tta_epochs=args.tta_epochs, tta_lr=args.tta_lr)
    names = [n for n in args.contenders.split(',')] + (['sft_nb_fast'] if args.fast else []) + (['sft_nb_tta'] if args.tta else [])
    for data in args.data.split(','):  # one table per data set, each saved as soon as it is done
        cfg['data'] = check_data_name(data)
        env = environment()
        print(f"{command_line()}\n{env}\n{cfg}", flush=True)
        name = 'classification' + ('_length3' if data == 'length3' else '') + ('_quick' if args.quick else '') + ('_cuda' if args.device == 'cuda' else '') + (f'_{args.tag}' if args.tag else '')
        results = alternate(SCRIPT, names, cfg, args.repeats, partial=name)
        md = f"# classification benchmark\n\n`{command_line()}`\n\n{env['date_utc']}, {env['cpu']} ({env['cpu_flags']}), {env['cores']} cores, " \
             f"precision {env['precision']} for every contender, load average {env['load_avg_1m']} at start\n\n" + report(results, names, cfg, args)
        print(md)
        save(name, {'command': command_line(), 'env': env, 'cfg': dict(cfg), 'results': results}, md)

DATA_SETS = ('rt', 'length3')
def check_data_name(d:str)->str:
    if d not in DATA_SETS: sys.exit(f"--data: unknown data set {d!r}; use one or more of {', '.join(DATA_SETS)}, comma-separated")
    return d

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-train', type=int, default=1000); p.add_argument('--n-valid', type=int, default=500)
    p.add_argument('--epochs', type=int, default=2); p.add_argument('--max-length', type=int, default=48)
    p.add_argument('--batch-size', type=int, default=32); p.add_argument('--lr', type=float, default=1e-4)
    p.add_argument('--seed', type=int, default=42); p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--vary-seed', action='store_true', help='repeat r trains with seed + r (same data): accuracy gets a spread')
    p.add_argument('--threads', type=int, default=0, help='torch threads in each run (0: torch default)')
    p.add_argument('--eval-every', type=int, default=None, help='sft_nb: also validate every N steps (time-to-accuracy curve)')
    p.add_argument('--contenders', default='hf_default,hf_grouped,sft_nb')
    p.add_argument('--fast', action='store_true', help='add sft_nb_fast (frozen word embeddings)')
    p.add_argument('--tta', action='store_true', help='add sft_nb_tta (--tta-epochs at --tta-lr)')
    p.add_argument('--tta-epochs', type=int, default=1); p.add_argument('--tta-lr', default='2e-4', help="a float or 'slice(HI)' (head HI, body HI/10)")
    p.add_argument('--quick', action='store_true', help='300 examples, 1 epoch, 1 repeat')
    p.add_argument('--data', default='rt', help="rt: the bundled reviews; length3: a 3-class set where length predicts the label; 'rt,length3': both, one table each")
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (bf16 on a GPU)")
    p.add_argument('--tag', help='suffix of the results file name (bench/results/classification_<tag>.json)')
    p.add_argument('--report', help='print the tables of a saved results JSON (e.g. a .partial.json) and exit')
    main_or_worker(RUNNERS, parent, p)
