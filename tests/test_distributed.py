"""Multi-process training on CPU (torchrun, gloo): two processes give the weights of one process with the same effective
batch, and a process that dies takes the run down with a clear error instead of a hang.

Run: `pytest tests/test_distributed.py` (the dead-rank check, ~30 s); `pytest --slow tests/test_distributed.py` adds the
2-vs-1 weights comparison (3 more Python processes that import torch and transformers)."""
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
    from sft_nb.data import dataloaders
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
