"""Multi-process training on CPU (torchrun, gloo): two processes give the weights of one process with the same effective
batch, and a process that dies takes the run down with a clear error instead of a hang.

Run: `pytest tests/test_distributed.py` (the dead-rank check, ~30 s); `pytest --slow tests/test_distributed.py` adds the
2-vs-1 weights comparison (3 more Python processes that import torch and transformers) and resume across a change of
process count (2 -> 1 and 1 -> 2, 4 more)."""
import os, sys, json, time, shutil, subprocess
from pathlib import Path
import pytest

from helpers_reliability import DIST_SCRIPT, dist_cmd, run_env, load_weights, max_weight_diff, build_workspace

pytestmark = pytest.mark.usefixtures('sft_cache')

@pytest.fixture(scope='module')
def dist_ws(tmp_path_factory, sft_cache_dir):
    "Workspace (240 training rows: 60 batches of 4, an even number, so no rank pads its share) and the script."
    root = tmp_path_factory.mktemp('dist')
    ws = build_workspace(root/'ws', n_train=240)
    script = root/'dist_run.py'; script.write_text(DIST_SCRIPT)
    # tokenize once here: the ranks then only read the cache (two ranks filling one cache folder at once is not tested here)
    from transformers import AutoTokenizer
    from sft_nb.batches import dataloaders
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('SFT_NB_CACHE', str(sft_cache_dir))
        dataloaders({'train': str(ws/'train.csv'), 'validation': str(ws/'valid.csv')}, AutoTokenizer.from_pretrained(ws/'model'),
                    'classification', batch_size=4, max_length=32, seed=0)
    return root, ws, script

def _run(cmd, cache, timeout):
    t0 = time.time()
    r = subprocess.run(cmd, env=run_env(cache), capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0

def _reports(stdout:str)->list[dict]:
    return [json.loads(l) for l in stdout.splitlines() if l.startswith('{"rank"')]

@pytest.mark.slow
def test_two_processes_match_one(dist_ws, sft_cache_dir):
    """torchrun --nproc_per_node 2, batch 4 per process, vs one process, batch 4 with 2 accumulation steps: the same 8
    examples per optimizer step, the same token-normalised loss, so the same weights (atol 1e-5)."""
    root, ws, script = dist_ws
    r1, t1 = _run(dist_cmd(script, 1, ws, root/'one', 4, 2, 0), sft_cache_dir, 600)  # also fills the tokenization cache
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2, t2 = _run(dist_cmd(script, 2, ws, root/'two', 4, 1, 0), sft_cache_dir, 600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    reps = _reports(r2.stdout)
    assert sorted(r['rank'] for r in reps) == [0, 1] and all(r['num_processes'] == 2 for r in reps), r2.stdout[-2000:]
    assert _reports(r1.stdout)[0]['steps'] == reps[0]['steps'] == 60
    diff = max_weight_diff(load_weights(root/'one'/'model.safetensors'), load_weights(root/'two'/'model.safetensors'))
    print(f"\n1 process {t1:.0f} s, 2 processes {t2:.0f} s, max weight difference {diff:.2e}")
    assert diff <= 1e-5

def test_dead_rank_ends_the_run(dist_ws, sft_cache_dir):
    "Rank 1 calls os._exit(1) after step 2: torchrun stops rank 0 and exits non-zero within 120 s, naming the failed rank."
    root, ws, script = dist_ws
    t0 = time.time()
    try: r, secs = _run(dist_cmd(script, 2, ws, root/'dead', 4, 1, 2), sft_cache_dir, 240)
    except subprocess.TimeoutExpired: pytest.fail("the run hung for 240 s after rank 1 died")
    assert r.returncode != 0
    assert secs < 120, f"took {secs:.0f} s to notice the dead rank"
    log = r.stdout + r.stderr
    assert 'rank 1: dying at step 2' in log
    assert 'ChildFailedError' in log or 'exitcode' in log, log[-3000:]
    assert not (root/'dead'/'model.safetensors').exists()

# ------------------------------------------------------------------------- resume across a change of process count
RESUME_SCRIPT = r'''
"python this.py WS OUT BATCH GRAD_ACCUM STOP_AT RESUME: 2 epochs of the tiny workspace, a checkpoint every 5 steps (all kept)"
import os, sys, json
from pathlib import Path
from transformers import AutoTokenizer
from safetensors.torch import save_model
from sft_nb.core import Callback, CancelFitException
from sft_nb.batches import dataloaders
from sft_nb.learner import Learner
from sft_nb.models import load_model

ws, out, bs, accum, stop_at, resume = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:7])

class Probe(Callback):
    "Record where a resumed fit starts; stop cleanly (every rank) after optimizer step `stop_at`."
    def before_fit(self): self.start = {'step': self.learn.step, 'seen': self.learn.checkpointer.seen}
    def after_step(self):
        if self.learn.step == stop_at: raise CancelFitException()

tok = AutoTokenizer.from_pretrained(ws/'model')
dls = dataloaders({'train': str(ws/'train.csv'), 'validation': str(ws/'valid.csv')}, tok, 'classification',
                  batch_size=bs, max_length=32, seed=0)
probe = Probe()
learn = Learner(load_model(ws/'model', 'classification', id2label=dls.id2label), dls, tokenizer=tok, precision='no', lr=1e-3,
                grad_accum=accum, seed=0, output_dir=out, checkpoint_every=5, keep_last=0, progress=False, cbs=[probe])
learn.fit(2, resume=bool(resume))
acc = learn.accelerator
if acc.is_main_process:
    save_model(acc.unwrap_model(learn.model), str(out/'model.safetensors'))
    print(json.dumps({'rank': 0, 'num_processes': acc.num_processes, 'steps': learn.step, 'start': probe.start,
                      'train_losses': [l for _, l, _ in learn.train_losses]}), flush=True)
acc.wait_for_everyone()
'''

def _optimizer_state(ckpt:Path)->dict:
    import torch
    st = torch.load(ckpt/'state.pt', weights_only=True)['optimizer']['state']
    return {f'{i}.{k}': v for i, s in st.items() for k, v in s.items()}

def _resume_run(script, nproc, ws, out, cache, accum, stop_at=0, resume=0):
    r, secs = _run(dist_cmd(script, nproc, ws, out, 4, accum, stop_at, resume), cache, 600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rep = _reports(r.stdout)
    assert len(rep) == 1 and rep[0]['num_processes'] == nproc, r.stdout[-2000:]
    return rep[0]

@pytest.mark.slow
def test_resume_across_process_count(dist_ws, sft_cache_dir):
    """(4 training subprocesses, ~2 min on a quiet 2-core machine; the default run checks the same through
    `sft_nb.distributed.launch` in nbs/10_learner.ipynb.) A checkpoint of 2 processes x batch 4 resumes on 1 process x batch 4 x grad_accum 2 (same 8 examples per step),
    and a 1-process checkpoint resumes on 2 processes: both continue at the same example and optimizer state and end
    with the weights of the uninterrupted run (dropout is off in the workspace model: no RNG stream is involved)."""
    root, ws, _ = dist_ws
    script = root/'resume_run.py'; script.write_text(RESUME_SCRIPT)
    ref = _resume_run(script, 1, ws, root/'r_ref', sft_cache_dir, 2)  # 60 steps, a checkpoint every 5, all kept
    two = _resume_run(script, 2, ws, root/'r_two', sft_cache_dir, 1, stop_at=37)  # stops in epoch 2 (30 steps per epoch)
    assert two['steps'] == 37
    saved = root/'r_two'/'checkpoints'/'step-00000035'
    meta = json.loads((saved/'trainer_state.json').read_text())
    assert (meta['processes'], meta['seen'], meta['epoch']) == (2, 5, 1)  # 5 batches of 4 per process into epoch 2
    # the 2-process optimizer state at step 35 is the 1-process one: DDP averaged the same 8-example gradients
    a, b = _optimizer_state(root/'r_ref'/'checkpoints'/'step-00000035'), _optimizer_state(saved)
    assert a.keys() == b.keys() and max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    # 2 -> 1: resume the 2-process checkpoint on one process
    for later in (root/'r_two'/'checkpoints').glob('step-*'):  # none after 35 (stopped at 37): resume=True picks step 35
        if int(later.name.split('-')[1]) > 35: shutil.rmtree(later)
    one = _resume_run(script, 1, ws, root/'r_two', sft_cache_dir, 2, resume=1)
    assert one['start'] == {'step': 35, 'seen': 10} and one['steps'] == 60
    # 1 -> 2: the reference's own step-35 checkpoint, resumed on two processes
    (root/'r_back'/'checkpoints').mkdir(parents=True)
    shutil.copytree(root/'r_ref'/'checkpoints'/'step-00000035', root/'r_back'/'checkpoints'/'step-00000035')
    back = _resume_run(script, 2, ws, root/'r_back', sft_cache_dir, 1, resume=1)
    assert back['start'] == {'step': 35, 'seen': 5} and back['steps'] == 60
    w_ref = load_weights(root/'r_ref'/'model.safetensors')
    for run in ('r_two', 'r_back'):
        diff = max_weight_diff(w_ref, load_weights(root/run/'model.safetensors'))
        assert diff <= 1e-6, f"{run}: max weight difference {diff:.2e}"
    for rep in (one, back):  # the loss of every optimizer step, before and after the change (summed over processes)
        assert len(rep['train_losses']) == 60 and max(abs(x - y) for x, y in zip(rep['train_losses'], ref['train_losses'])) <= 1e-6
