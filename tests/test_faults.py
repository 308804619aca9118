"""Fault injection on training: SIGKILL at random points and resume, Ctrl-C, a NaN loss, a failing callback.
Every interruption leaves a checkpoint that verifies, and resuming ends with the weights of an uninterrupted run.

Run: `pytest tests/test_faults.py` (2 kills), `pytest --slow tests/test_faults.py` (10 kills)."""
import os, json, time, random, signal, shutil
from pathlib import Path
import pytest
import torch

from helpers_reliability import (FAULT_N_TRAIN, fault_config, write_config, start_train, start_paused_train, checkpoint_steps, wait_for, tail, load_weights,
                                 max_weight_diff, tree_hashes, damaged)
from sft_nb.core import Callback
from sft_nb.callbacks.checkpoint import latest_checkpoint, list_checkpoints, verify_checkpoint

pytestmark = pytest.mark.usefixtures('sft_cache', 'one_thread')

ATOL = 1e-6
TOTAL_STEPS = 3 * FAULT_N_TRAIN // 4  # 3 epochs, batch 4 (see fault_config)

def _ws_copy(reference_run, tmp_path)->Path:
    "The reference workspace (model, data) without its output."
    ws = tmp_path/'ws'
    shutil.copytree(reference_run.ws, ws, ignore=shutil.ignore_patterns('out'))
    return ws

def _check_checkpoints(root:Path, floor:int)->tuple[int, int]:
    """After an interruption: the newest visible checkpoint verifies (so it is what `latest_checkpoint` picks), progress never
    goes back below `floor`, and any other damaged folder is an older one caught mid-pruning. Returns (latest step, leftovers)."""
    visible = list_checkpoints(root)
    assert visible, "no checkpoint left after the interruption"
    newest, latest = visible[-1], latest_checkpoint(root)
    assert latest == newest, f"the newest checkpoint {newest.name} is damaged: {verify_checkpoint(newest)}"
    assert verify_checkpoint(latest) is None
    step = int(latest.name.split('-')[-1])
    assert step >= floor, f"progress lost: latest checkpoint {step} < {floor}"
    meta = json.loads((latest/'trainer_state.json').read_text())
    assert meta['step'] == step
    torch.load(latest/'state.pt', weights_only=True)
    load_weights(latest)
    leftovers = sum(verify_checkpoint(p) is not None for p in visible[:-1])
    return step, leftovers

def _final_diff(out:Path, reference_run)->float:
    return max_weight_diff(load_weights(out/'model'), load_weights(reference_run.out/'model'))

@pytest.mark.parametrize('n_kills', [pytest.param(2, id='2_kills'), pytest.param(10, id='10_kills', marks=pytest.mark.slow)])
def test_sigkill_and_resume(reference_run, tmp_path, n_kills):
    """SIGKILL `sft-nb train` at a random moment after it wrote a new checkpoint, `n_kills` times, re-running the same command
    each time: no kill ever leaves the newest checkpoint damaged or loses finished steps, the final weights equal the
    uninterrupted run's (atol 1e-6), and the model and data folders are untouched."""
    ws = _ws_copy(reference_run, tmp_path)
    out = ws/'out'
    cfg = write_config(ws/'run.yaml', fault_config(ws, out))
    log, rng = tmp_path/'train.log', random.Random(20261129 + n_kills)
    data_before = tree_hashes(ws/'model') | {f'data/{k}': v for k, v in tree_hashes(ws/'train.csv').items()}
    kills, launches, floor, leftovers, kill_steps = 0, 0, 0, 0, []
    while True:
        known = max(checkpoint_steps(out), default=0)
        p = start_train(cfg, reference_run.cache, log)
        launches += 1
        if kills < n_kills:
            # kills spread over the whole run (every epoch, near epoch ends too), each after at least one new checkpoint
            target = max(known + 1, (kills + 1) * TOTAL_STEPS // (n_kills + 1) + rng.randint(-12, 12))
            new = wait_for(lambda: max(checkpoint_steps(out), default=0) >= target, timeout=600, proc=p)
            assert new, f"no checkpoint {target} after launch {launches}:\n{tail(log)}"
            time.sleep(rng.uniform(0, 0.4))  # then a random instant: mid-step, mid-checkpoint, mid-validation, mid-save
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL); p.wait()
                kills += 1
                floor, lo = _check_checkpoints(out/'checkpoints', floor)
                kill_steps.append(floor); leftovers += lo
                continue
        rc = p.wait(timeout=900)
        assert rc == 0, tail(log)
        break
    assert kills == n_kills, f"the run finished after {kills} kills (steps {kill_steps}): make it longer"
    diff = _final_diff(out, reference_run)
    print(f"\n{kills} SIGKILLs at checkpoint steps {kill_steps}, {launches} launches, max weight difference {diff:.2e}, "
          f"{leftovers} older checkpoint(s) caught mid-pruning")
    assert diff <= ATOL, f"resumed weights differ from the uninterrupted run by {diff:.3g}"
    assert not damaged(data_before, tree_hashes(ws/'model') | {f'data/{k}': v for k, v in tree_hashes(ws/'train.csv').items()})
    assert json.loads((out/'metrics.json').read_text()) == json.loads((reference_run.out/'metrics.json').read_text())

def test_ctrl_c_then_resume(reference_run, tmp_path, capsys):
    "SIGINT (Ctrl-C) mid-run: exit status 130 with a resume hint and no traceback, a checkpoint that verifies, and resuming ends like the uninterrupted run."
    from sft_nb.recipe import train
    ws = _ws_copy(reference_run, tmp_path)
    out = ws/'out'
    cfg = fault_config(ws, out)
    log = tmp_path/'train.log'
    mark = tmp_path/'paused'
    p = start_paused_train(write_config(ws/'run.yaml', cfg), reference_run.cache, log, at=6, mark=mark)
    assert wait_for(mark.exists, timeout=600, proc=p), tail(log)  # held after step 6: the signal cannot come too late
    os.kill(p.pid, signal.SIGINT)
    rc = p.wait(timeout=600)  # a loaded machine can take a while to unwind and exit
    assert rc == 130, f"exit status {rc}:\n{tail(log)}"
    assert 'interrupted. Run the same command again to resume' in tail(log) and 'Traceback' not in tail(log)
    _check_checkpoints(out/'checkpoints', 6)
    train(cfg, quiet=True)  # the resume, in this process
    assert _final_diff(out, reference_run) <= ATOL

class InjectNaN(Callback):
    "Poison the model outputs at optimizer step `at` (as a bad batch or an overflow would)."
    order, run_valid = -50, False
    def __init__(self, at:int): self.at = at
    def after_pred(self):
        if self.learn.step + 1 == self.at: self.learn.outputs['logits'] = self.learn.outputs['logits'] * float('nan')

class Boom(Callback):
    "A user callback that fails at optimizer step `at`."
    def __init__(self, at:int): self.at = at
    def after_step(self):
        if self.learn.step == self.at: raise RuntimeError(f"boom at step {self.at}")

@pytest.mark.parametrize('fault,expected', [pytest.param(lambda: InjectNaN(at=11), 'sft', id='nan_loss'),
                                            pytest.param(lambda: Boom(at=11), RuntimeError, id='callback_exception')])
def test_fault_stops_cleanly_and_resumes(reference_run, tmp_path, fault, expected):
    """A NaN loss stops with an SftError naming the step; a failing callback's own error propagates. Either way the run stops
    at step 11 with checkpoint 10 intact and no temporary folders, and resuming ends with the uninterrupted run's weights."""
    from sft_nb.recipe import train
    from sft_nb.core import SftError
    ws = _ws_copy(reference_run, tmp_path)
    out = ws/'out'
    cfg = fault_config(ws, out)
    with pytest.raises(SftError if expected == 'sft' else expected) as ei: train(cfg, cbs=[fault()], quiet=True)
    if expected == 'sft': assert 'nan' in str(ei.value).lower() and ei.value.where and ei.value.fix
    step, _ = _check_checkpoints(out/'checkpoints', 10)
    assert step == 10
    assert not [p for p in (out/'checkpoints').iterdir() if p.name.startswith('.')], "temporary folders left behind"
    assert not (out/'model').exists()  # no half-trained model presented as the result
    train(cfg, quiet=True)
    assert _final_diff(out, reference_run) <= ATOL

