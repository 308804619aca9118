"""Hold `sft_nb.plan` against measured runs: peak resident memory and time per training batch, one configuration per process.

Each configuration (a `RunConfig` dict) trains for one short epoch (its `data.max_train_examples` rows, no validation)
in a fresh Python process, built the way `sft_nb.recipe.train` builds a run (`load_task_data`, `run_max_length`,
`dataloaders`, `sft_nb.plan.run_model`, `run_loss`, `Learner`). The worker reports the process's peak resident memory
(VmHWM, read at the end) and the wall time of every training batch; with `--plan` also the plan `train` would make
there, just before the `Learner`. Used by `nbs/25_plan.ipynb`; by hand:

    python bench/plan_check.py '{"model": "minilm", "data": {"max_train_examples": 256}}' --plan
"""
from __future__ import annotations
import json, os, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb as peak_mb  # VmHWM: this process's own peak

def worker(d:dict, with_plan:bool=False, clock:str='cpu', threads:int|None=1)->dict:
    "Train the configuration `d` for one epoch; peak memory (MB) and seconds per batch."
    import tempfile, torch
    from sft_nb.config import config_from_dict
    from sft_nb.recipe import load_task_data, run_max_length, run_packing, run_loss, _loader_input
    from sft_nb.models import load_tokenizer
    from sft_nb.batches import dataloaders
    from sft_nb.learner import Learner
    from sft_nb.core import Callback
    from sft_nb.plan import run_model
    if threads: torch.set_num_threads(threads)  # one thread: its CPU time is the work itself (no OpenMP threads spinning at barriers)
    cfg = config_from_dict(d)
    dsd = load_task_data(cfg)
    tok = load_tokenizer(cfg.model)
    max_length, _, _ = run_max_length(cfg, dsd, tok)
    dls = dataloaders(tokenizer=tok, task=cfg.task, **_loader_input(cfg, dsd), batch_size=cfg.batch_size, max_length=max_length,
                      packing=run_packing(cfg), seed=cfg.seed, verbose=False)
    dls.valid = dls.test = None
    stages = {'data': peak_mb()}
    model = run_model(cfg, dls.id2label)
    stages['model'] = peak_mb()
    loss = run_loss(cfg, model, dls.one_batch(), dsd)
    predicted = None
    if with_plan:  # as `train` plans: just before the Learner, no timed passes; its probes add no state (weights, RNG as they were)
        from sft_nb.plan import plan_run
        t = time.perf_counter()
        _, pl, _ = plan_run(cfg, dsd=dsd, tok=tok, dls=dls, model=model, max_length=max_length, loss_func=loss, clock=clock,
                            timed_steps=0)
        predicted = {**{k: v for k, v in pl.numbers.items() if k != 'terms'}, 'terms': pl.terms, 'seconds': time.perf_counter() - t}
    stages['plan'] = peak_mb()
    times, cpu = [], []
    class Timer(Callback):
        def before_batch(self): self.t, self.c = time.perf_counter(), time.process_time()
        def after_batch(self): times.append(time.perf_counter() - self.t); cpu.append(time.process_time() - self.c)
    with tempfile.TemporaryDirectory() as out:
        learn = Learner(model, dls, loss_func=loss, cbs=[Timer()], progress=False, lr=cfg.lr, wd=cfg.wd, grad_accum=cfg.grad_accum, clip=cfg.clip,
                        precision=cfg.precision, seed=cfg.seed, output_dir=out, tokenizer=tok, gradient_checkpointing=cfg.gradient_checkpointing)
        learn.fit(1)
    return {'peak_mb': peak_mb(), 'stages': stages, 'batch_s': times, 'batch_cpu_s': cpu, 'precision': learn.precision, 'max_length': max_length, 'threads': torch.get_num_threads(), 'plan': predicted}

def measure(d:dict, with_plan:bool=False, timeout:float=1800)->dict:
    "`worker(d, with_plan)` in a fresh process (so that no other measurement's memory hides in its peak)."
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false', 'TRANSFORMERS_VERBOSITY': 'error', 'PYTHONWARNINGS': 'ignore'}
    p = subprocess.run([sys.executable, __file__, json.dumps(d)] + ['--plan'] * with_plan, capture_output=True, text=True, timeout=timeout, env=env)
    line = next((l for l in p.stdout.splitlines()[::-1] if l.startswith('RESULT ')), None)
    if line is None: raise RuntimeError(f"the worker failed:\n{p.stderr[-3000:]}")
    return json.loads(line[7:])

if __name__ == '__main__':
    print('RESULT ' + json.dumps(worker(json.loads(sys.argv[1]), with_plan='--plan' in sys.argv)), flush=True)
