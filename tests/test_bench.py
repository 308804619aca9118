"""The benchmark scripts still run against the library as it is now (a refactor of the `Learner` once broke them
silently): each script's sft_nb contenders train a few examples in a fresh process and print their tables.
Results go to a temporary folder (`SFT_NB_BENCH_RESULTS`), never into bench/results."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def run_bench(script, *args, tmp_path):
    env = {**os.environ, 'SFT_NB_BENCH_RESULTS': str(tmp_path), 'HF_HUB_OFFLINE': '1'}
    p = subprocess.run([sys.executable, str(ROOT / 'bench' / script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout

def results(tmp_path, name):
    return {r['name']: r for r in json.loads((tmp_path / f'{name}.json').read_text())['results']}

def test_classification_bench_runs(tmp_path):
    out = run_bench('classification.py', '--quick', '--data', 'length3,rt', '--n-train', '24', '--n-valid', '16', '--max-length', '32',
                    '--contenders', 'sft_nb,sft_nb_free', '--tag', 'test', tmp_path=tmp_path)
    for name in ('classification_length3_quick_test', 'classification_quick_test'):
        res = results(tmp_path, name)
        for c in ('sft_nb', 'sft_nb_free'):
            assert 'error' not in res[c], res[c].get('error')
            assert res[c]['examples'] == 24 and res[c]['samples_per_s'] > 0 and res[c]['precision'] in ('no', 'bf16')
        assert res['sft_nb_free']['padding_pct'] == 0
    assert 'AMD' in out or 'Intel' in out or 'cores' in out   # the machine is named with the table

def test_causal_bench_runs(tmp_path):
    run_bench('causal.py', '--n-train', '4', '--batch-size', '2', '--contenders', 'sft_nb,sft_nb_packed',
              '--tag', 'test', tmp_path=tmp_path)
    res = results(tmp_path, 'causal_test')
    for c in ('sft_nb', 'sft_nb_packed'):
        assert 'error' not in res[c], res[c].get('error')
    assert res['sft_nb_packed']['padding_pct'] == 0

def test_learner_step_does_no_extra_work(tmp_path):
    "bench/learner_ops.py: a Learner step runs the bare loop's matmuls and optimizer calls, no more (what bench/README claims)."
    out = run_bench('learner_ops.py', '--n-train', '64', tmp_path=tmp_path)
    assert 'operators whose calls per step differ' in out, out
    differing = {l.split()[0] for l in out.splitlines() if l.startswith('  aten::')}
    assert not differing & {'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::_fused_adamw_', 'aten::native_layer_norm'}, out
