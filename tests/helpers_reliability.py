"Shared helpers of the reliability tests: a tiny run (model, data, config), the training subprocess, folder hashes."
from __future__ import annotations
import os, sys, json, time, random, shutil, hashlib, signal, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The `sft-nb` command without relying on the console script being on PATH (same code path: `sft_nb.cli.main`)
SFT_NB = [sys.executable, '-c', 'import sys; from sft_nb.cli import main; sys.exit(main())']

# --------------------------------------------------------------------------------------------------- tiny workspace
def make_data(folder:Path, n_train:int=200, n_valid:int=40, seed:int=0)->dict:
    "Write train.csv and valid.csv (text, label in {neg, pos}) into `folder`; returns their paths."
    import pandas as pd
    from sft_nb.assets import tiny_corpus
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    rng, texts = random.Random(seed), tiny_corpus(n_train + n_valid, seed=seed + 1)
    labels = [rng.choice(['neg', 'pos']) for _ in texts]
    out = {}
    for name, sl in (('train', slice(0, n_train)), ('valid', slice(n_train, n_train + n_valid))):
        out[name] = folder/f'{name}.csv'
        pd.DataFrame({'text': texts[sl], 'label': labels[sl]}).to_csv(out[name], index=False)
    return out

def make_model(folder:Path, family:str='bert', task:str='classification', **kw)->Path:
    "Save a random-init tiny model with its tokenizer in `folder`, with dropout off (runs are deterministic)."
    from sft_nb.assets import tiny_model
    drop = {'bert': dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0),
            'roberta': dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)}.get(family, {})
    tiny_model(family, task, save_to=folder, **{**drop, **kw})
    return Path(folder)

def run_config(ws:Path, **over)->dict:
    "A config dict for a tiny classification run in workspace `ws` (model/, train.csv, valid.csv); `over` replaces keys."
    ws = Path(ws)
    cfg = {'task': 'classification', 'model': str(ws/'model'),
           'data': {'name': None, 'train': str(ws/'train.csv'), 'validation': str(ws/'valid.csv')},
           'epochs': 2, 'batch_size': 4, 'max_length': 32, 'lr': 1e-3, 'checkpoint_every': 2,
           'precision': 'no', 'metrics': ['accuracy'], 'output_dir': str(ws/'out')}
    for k, v in over.items():
        if k == 'data': cfg['data'] = {**cfg['data'], **v}
        else: cfg[k] = v
    return cfg

def write_config(path:Path, cfg:dict)->Path:
    import yaml
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))
    return Path(path)

def build_workspace(ws:Path, family:str='bert', n_train:int=200, n_valid:int=40)->Path:
    "model/, train.csv, valid.csv in `ws`."
    make_model(Path(ws)/'model', family)
    make_data(ws, n_train, n_valid)
    return Path(ws)

# --------------------------------------------------------------------------------------------------- hashes
def sha256(p:Path)->str:
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
    return h.hexdigest()

def tree_hashes(root:Path)->dict[str, str]:
    "relative path -> sha256 of every file under `root` (empty when `root` does not exist)."
    root = Path(root)
    if root.is_file(): return {'.': sha256(root)}
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob('*')) if p.is_file()} if root.exists() else {}

def damaged(before:dict, after:dict)->list[str]:
    "Files of `before` that are gone or changed in `after` (new files are allowed)."
    return [k for k, h in before.items() if after.get(k) != h]

# --------------------------------------------------------------------------------------------------- weights
def load_weights(path:Path)->dict:
    "The tensors of a safetensors file (or of `model.safetensors` in a folder)."
    from safetensors.torch import load_file
    path = Path(path)
    return load_file(str(path/'model.safetensors' if path.is_dir() else path))

def max_weight_diff(a:dict, b:dict)->float:
    "Largest absolute difference between two state dicts with the same keys."
    assert set(a) == set(b), set(a) ^ set(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) if a[k].numel() else 0. for k in a)

# --------------------------------------------------------------------------------------------------- subprocesses
def run_env(cache:Path, **extra)->dict:
    "Environment of a training subprocess: private tokenization cache, offline, one thread (same numerics every run)."
    env = {**os.environ, 'SFT_NB_CACHE': str(cache), 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
           'PYTHONUNBUFFERED': '1', 'TOKENIZERS_PARALLELISM': 'false', 'PYTHONPATH': str(ROOT)}
    env.update({k: str(v) for k, v in extra.items()})
    return env

def train_cmd(cfg_path:Path, *sets:str)->list[str]:
    "`sft-nb train CFG --quiet --set ...` as an argv."
    return [*SFT_NB, 'train', str(cfg_path), '--quiet', *[a for s in sets for a in ('--set', s)]]

def start_train(cfg_path:Path, cache:Path, log:Path, *sets:str)->subprocess.Popen:
    "Start `sft-nb train` in its own process group, output appended to `log`."
    f = open(log, 'ab')
    return subprocess.Popen(train_cmd(cfg_path, *sets), stdout=f, stderr=subprocess.STDOUT, env=run_env(cache),
                            cwd=str(Path(cfg_path).parent), start_new_session=True)

PAUSED_TRAIN = """
import sys, time, pathlib, signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # a test runner started in the background (`cmd &`) hands down an ignored SIGINT
from sft_nb.core import Callback
import sft_nb.cli as cli
at, mark = int(sys.argv[1]), pathlib.Path(sys.argv[2])
class PauseAt(Callback):
    "Hold the run after optimizer step `at`, its checkpoint written (order 100: after the Checkpointer), until a signal ends it."
    order = 100
    def after_step(self):
        if self.learn.step != at: return
        mark.write_text('paused')
        while True: time.sleep(0.05)
train = cli.train
cli.train = lambda cfg, **kw: train(cfg, cbs=[PauseAt()], **kw)
sys.exit(cli.main(sys.argv[3:]))
"""

def start_paused_train(cfg_path:Path, cache:Path, log:Path, at:int, mark:Path)->subprocess.Popen:
    """`sft-nb train` that holds after optimizer step `at` and writes `mark`: a state the run cannot leave by itself, so a
    signal sent once `mark` exists always finds it mid-run, however fast the machine."""
    f = open(log, 'ab')
    argv = [sys.executable, '-c', PAUSED_TRAIN, str(at), str(mark), *train_cmd(cfg_path)[len(SFT_NB):]]
    return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=run_env(cache), cwd=str(Path(cfg_path).parent), start_new_session=True)

def run_train(cfg_path:Path, cache:Path, log:Path, timeout:float=900, *sets:str)->int:
    "Run `sft-nb train` to the end; returns its exit status."
    p = start_train(cfg_path, cache, log, *sets)
    try: return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.wait()
        raise

def checkpoint_steps(out:Path)->list[int]:
    "Steps of the visible checkpoint folders of a run."
    from sft_nb.callbacks.checkpoint import list_checkpoints
    return [int(p.name.split('-')[-1]) for p in list_checkpoints(Path(out)/'checkpoints')]

def wait_for(pred, timeout:float, every:float=0.05, proc:subprocess.Popen|None=None)->bool:
    "Poll `pred()` until true (True), the process ends or `timeout` passes (False)."
    end = time.time() + timeout
    while time.time() < end:
        if pred(): return True
        if proc is not None and proc.poll() is not None: return bool(pred())
        time.sleep(every)
    return False

def tail(path:Path, n:int=3000)->str:
    try: return Path(path).read_text(errors='replace')[-n:]
    except OSError: return ''

# --------------------------------------------------------------------------------------------------- the fault-injection run
FAULT_N_TRAIN = 320  # 80 steps per epoch at batch 4: long enough to be killed many times

def fault_config(ws:Path, out:Path, **over)->dict:
    "The run every fault test interrupts: 3 epochs x 80 steps of a tiny BERT, a checkpoint every 2 steps."
    return run_config(ws, epochs=3, batch_size=4, checkpoint_every=2, output_dir=str(out), **over)

def reference_run(root:Path)->'SimpleNamespace':
    """One uninterrupted `sft-nb train` of the fault config, in a subprocess whose HOME, TMPDIR, HF_HOME, XDG_CACHE_HOME
    and working folder are fresh empty folders (the security test checks nothing was written there)."""
    from types import SimpleNamespace
    root = Path(root)
    ws = build_workspace(root/'ws', n_train=FAULT_N_TRAIN)
    jail = {k: root/'jail'/k for k in ('home', 'tmp', 'hf_home', 'xdg', 'cwd', 'cache')}
    for d in jail.values(): d.mkdir(parents=True)
    out = ws/'out'
    cfg = write_config(ws/'run.yaml', fault_config(ws, out))
    before = tree_hashes(ws)
    env = run_env(jail['cache'], HOME=jail['home'], TMPDIR=jail['tmp'], HF_HOME=jail['hf_home'], XDG_CACHE_HOME=jail['xdg'])
    t0 = time.time()
    r = subprocess.run(train_cmd(cfg), cwd=jail['cwd'], env=env, capture_output=True, text=True, timeout=1200)
    return SimpleNamespace(ws=ws, out=out, cfg=cfg, jail=jail, cache=jail['cache'], before=before, after=tree_hashes(ws),
                           returncode=r.returncode, stderr=r.stderr, stdout=r.stdout, seconds=time.time() - t0)

# --------------------------------------------------------------------------------------------------- the distributed run
DIST_SCRIPT = r'''
"One data-parallel run of the tiny classification workspace: python this.py WS OUT BATCH GRAD_ACCUM DIE_AT"
import os, sys, json, time
from pathlib import Path
import torch
from transformers import AutoTokenizer
from safetensors.torch import save_model
from sft_nb.core import Callback
from sft_nb.batches import dataloaders
from sft_nb.learner import Learner
from sft_nb.models import load_model

ws, out, bs, accum, die_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rank = int(os.environ.get('RANK', 0))

class DieAt(Callback):
    "Rank 1 dies abruptly (no cleanup, like an OOM kill) after optimizer step `die_at`."
    def after_step(self):
        if rank == 1 and self.learn.step == die_at:
            print(f"rank 1: dying at step {die_at}", flush=True); os._exit(1)

tok = AutoTokenizer.from_pretrained(ws/'model')
dls = dataloaders({'train': str(ws/'train.csv'), 'validation': str(ws/'valid.csv')}, tok, 'classification',
                  batch_size=bs, max_length=32, seed=0)
model = load_model(ws/'model', 'classification', id2label=dls.id2label)
learn = Learner(model, dls, tokenizer=tok, precision='no', lr=1e-3, grad_accum=accum, seed=0, cbs=[DieAt()] if die_at else [])
learn.fit(2)
acc = learn.accelerator
print(json.dumps({'rank': rank, 'num_processes': acc.num_processes, 'steps': learn.step,
                  'backend': str(getattr(acc.state, 'backend', None))}), flush=True)
if acc.is_main_process:
    out.mkdir(parents=True, exist_ok=True)
    save_model(acc.unwrap_model(learn.model), str(out/'model.safetensors'))
acc.wait_for_everyone()
'''

def dist_cmd(script:Path, nproc:int, *args)->list[str]:
    "torchrun (as `python -m torch.distributed.run`) with `nproc` CPU processes, or plain python for one."
    if nproc == 1: return [sys.executable, str(script), *map(str, args)]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
            '--monitor-interval=0.5', str(script), *map(str, args)]
