"""Reliability and security: bad input ends in one clear `SftError` and damages nothing on disk; weights and configs
are loaded without executing anything; a run writes only under its output_dir; memory stays flat over a long run.

Run: `pytest tests/test_reliability.py` (add `--slow` for the long memory run)."""
import os, re, sys, json, errno, pickle, shutil, subprocess
from pathlib import Path
from types import SimpleNamespace
import pytest
import torch

from helpers_reliability import (ROOT, run_config, write_config, tree_hashes, damaged, load_weights, make_model)
from sft_nb.core import SftError

pytestmark = pytest.mark.usefixtures('sft_cache', 'one_thread')

# ============================================================================================ the bad-input battery
def _csv(ws, name, text):
    p = Path(ws)/name; p.write_text(text); return p

def _bytes(ws, name, data:bytes):
    p = Path(ws)/name; p.write_bytes(data); return p

def _train(ws, **over):
    "Train a tiny run in-process through the same function `sft-nb train` calls."
    from sft_nb.recipe import train
    return train(run_config(ws, **over), quiet=True)

def _load(ws, path, task='classification', **kw):
    from sft_nb.data import load_data
    return load_data(path, task, **kw)

def _cli(*argv):
    "The `sft-nb` entry point in-process: an SftError becomes exit status 2 and one 'sft-nb: error:' message."
    from sft_nb.cli import main
    return main(list(map(str, argv)))

def _model_tok(ws):
    from transformers import AutoTokenizer
    from sft_nb.models import load_model
    return load_model(ws/'model', 'classification'), AutoTokenizer.from_pretrained(ws/'model')

def _learner(ws, **kw):
    from sft_nb.learner import Learner
    from sft_nb.batches import dataloaders
    m, tok = _model_tok(ws)
    dls = dataloaders({'train': str(ws/'train.csv'), 'validation': str(ws/'valid.csv')}, tok, 'classification', batch_size=8, max_length=32)
    return Learner(m, dls, tokenizer=tok, precision='no', **kw)

def _cfg(ws, **over):
    from sft_nb.config import config_from_dict
    return config_from_dict(run_config(ws, **over))

def _yaml_cfg(ws, text):
    from sft_nb.config import load_config
    p = Path(ws)/'bad.yaml'; p.write_text(text)
    return load_config(p)

def _pickled_table(ws):
    import pandas as pd
    p = Path(ws)/'train.pkl'
    pd.DataFrame({'text': ['a good movie'] * 4, 'label': ['pos'] * 4}).to_pickle(p)
    return p

def _disk_full_on_checkpoint(ws, monkeypatch):
    "torch.save (the checkpoint's state.pt, written after its model.safetensors) fails with ENOSPC at the 2nd checkpoint."
    real, calls = torch.save, []
    def full(*a, **k):
        calls.append(1)
        if len(calls) >= 2: raise OSError(errno.ENOSPC, 'No space left on device')
        return real(*a, **k)
    monkeypatch.setattr(torch, 'save', full)
    return _train(ws, epochs=1, checkpoint_every=2, data={'train': str(ws/'train.csv')}, **{'batch_size': 50})

def _readonly_output(ws, monkeypatch):
    "Root ignores chmod, so a read-only folder is simulated: os.access says no, and creating files raises EACCES."
    out = Path(ws)/'out'; out.mkdir()
    real = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode, *a, **k: False if Path(p) == out and mode & os.W_OK else real(p, mode, *a, **k))
    return _train(ws)

def _readonly_output_open(ws, monkeypatch):
    "A folder os.access calls writable (e.g. a read-only mount, ACLs) but where creating a file raises PermissionError."
    import tempfile
    out = Path(ws)/'out'; out.mkdir()
    def deny(*a, **k): raise PermissionError(errno.EACCES, 'Permission denied', str(out))
    monkeypatch.setattr(tempfile, 'mkstemp', deny)
    monkeypatch.setattr(tempfile, 'mkdtemp', deny)
    return _train(ws)

def _nan_loss_run(ws):
    from sft_nb.core import NonFiniteLossError
    return _train(ws, lr=1e30, clip=None, epochs=1)

def _batch_size_zero_dataloaders(ws):
    from sft_nb.batches import dataloaders
    _, tok = _model_tok(ws)
    return dataloaders({'train': str(ws/'train.csv')}, tok, 'classification', batch_size=0)

def _predict_non_strings(ws):
    from sft_nb.inference import predict
    m, tok = _model_tok(ws)
    return predict(m, tok, ['fine', None])

def _generate_bad_prompts(ws):
    from sft_nb.inference import generate
    m, tok = _model_tok(ws)
    return generate(m, tok, {'prompt': 'x'})

def _freeze_to_range(ws):
    from sft_nb.freeze import freeze_to
    return freeze_to(_model_tok(ws)[0], 99)

def _lora_bad_target(ws):
    from sft_nb.freeze import apply_lora
    return apply_lora(_model_tok(ws)[0], target_modules=['no_such_proj'], task='classification')

def _freeze_pattern_none(ws):
    from sft_nb.freeze import freeze_pattern
    return freeze_pattern(_model_tok(ws)[0], r'nothing\.matches')

def _damage_a_checkpoint(ws, mp):
    "prep: a finished one-epoch run whose latest checkpoint then has 64 bytes of its weights zeroed (bit rot)."
    from sft_nb.callbacks.checkpoint import latest_checkpoint
    _train(ws, epochs=1, data={'train': str(ws/'train.csv')}, batch_size=50)
    ck = latest_checkpoint(ws/'out'/'checkpoints')
    with open(ck/'model.safetensors', 'r+b') as f: f.seek(200); f.write(b'\x00' * 64)
    return ck

def _resume_from(ws, ck):
    return _learner(ws, output_dir=ws/'out').fit(1, resume=ck)

def _save_tiny(ws):
    from sft_nb.saving import save_model
    m, tok = _model_tok(ws)
    return save_model(m, tok, ws/'saved', label_names=['neg', 'pos'])

def _expect_exit(rc):
    "A CLI run must fail with status 2 (its SftError path); re-raise as SftError so the battery sees one shape."
    if rc == 2: raise SftError("the command failed cleanly (exit status 2)", where='sft-nb', fix='see its message')
    raise AssertionError(f"exit status {rc}, expected 2")

def C(name, act, prep=None):
    "A battery case: `prep(ws, mp)` sets up the bad input (before the snapshot), `act(ws, mp, ctx)` must fail cleanly."
    return (name, prep or (lambda ws, mp: None), act)

def F(name, content:str|bytes):
    "prep: write the bad file `name` into the workspace; ctx is its path."
    return lambda ws, mp: (_bytes if isinstance(content, bytes) else _csv)(ws, name, content)

def _rm(rel):
    return lambda ws, mp: (Path(ws)/rel).unlink()

def _write(rel, content):
    return lambda ws, mp: (Path(ws)/rel).write_bytes(content(Path(ws)/rel) if callable(content) else content)

def _mismatched_tokenizer(ws, mp):
    "A model folder whose tokenizer (ChatML BPE, 400 tokens) is not the one the model was built for (WordPiece, 300)."
    from sft_nb.assets import tiny_tokenizer
    tiny_tokenizer('chat').save_pretrained(ws/'model')

LONG = ' '.join(['good movie'] * 200)

BATTERY = [
    # ---- loaders: files
    C('empty_file',            lambda ws, mp, p: _load(ws, p), F('e.csv', '')),
    C('header_only',           lambda ws, mp, p: _load(ws, p), F('h.csv', 'text,label\n')),
    C('missing_file',          lambda ws, mp, p: _load(ws, ws/'nope.csv')),
    C('unknown_extension',     lambda ws, mp, p: _load(ws, p), F('data.xlsx', 'text,label\na,pos\n')),
    C('pickle_data_refused',   lambda ws, mp, p: _load(ws, p), lambda ws, mp: _pickled_table(ws)),
    C('malformed_jsonl',       lambda ws, mp, p: _load(ws, p), F('d.jsonl', '{"text": "a", "label": "pos"}\n{"text": "b", "label":\n')),
    C('json_not_records',      lambda ws, mp, p: _load(ws, p), F('d.json', '[1, 2, 3]')),
    C('json_object_top_level', lambda ws, mp, p: _load(ws, p), F('d.json', '{\n "text": ["a"],\n "label": ["pos"]\n}\n')),
    C('not_utf8',              lambda ws, mp, p: _load(ws, p), F('l.csv', b'text,label\ncaf\xe9,pos\n')),
    C('csv_unbalanced_quote',  lambda ws, mp, p: _load(ws, p), F('q.csv', 'text,label\n"a,pos\nb,neg\n' + 'c,pos\n' * 3)),
    C('csv_ragged_rows',       lambda ws, mp, p: _load(ws, p), F('r.csv', 'text,label\na,pos\nb,neg,extra,more\n')),
    C('corrupt_parquet',       lambda ws, mp, p: _load(ws, p), F('c.parquet', b'PAR1 this is not parquet')),
    C('binary_garbage_csv',    lambda ws, mp, p: _load(ws, p), F('g.csv', bytes(range(256)) * 4)),
    # ---- loaders: columns, types, labels
    C('wrong_columns',         lambda ws, mp, p: _load(ws, p), F('w.csv', 'body,stars\na,1\n')),
    C('column_map_typo',       lambda ws, mp, p: _load(ws, ws/'train.csv', columns={'text': 'txt'})),
    C('unknown_role',          lambda ws, mp, p: _load(ws, ws/'train.csv', columns={'txet': 'text'})),
    C('nan_label',             lambda ws, mp, p: _load(ws, p), F('n.csv', 'text,label\na,pos\nb,\nc,neg\n')),
    C('empty_text',            lambda ws, mp, p: _load(ws, p), F('t.csv', 'text,label\n,pos\nb,neg\n')),
    C('unknown_valid_label',   lambda ws, mp, p: _load(ws, {'train': ws/'train.csv', 'validation': p}), F('v.csv', 'text,label\na,pos\nb,maybe\n')),
    C('negative_int_label',    lambda ws, mp, p: _load(ws, p), F('i.csv', 'text,label\na,-1\nb,0\nc,1\n')),
    C('label_list_and_scalar', lambda ws, mp, p: _load(ws, p), F('l.jsonl', '{"text": "a", "label": [1, 2]}\n{"text": "b", "label": 0}\n')),  # lists alone are multi-label
    C('text_is_mapping',       lambda ws, mp, p: _train(ws, data={'train': str(p), 'validation': None}),
                               F('m.jsonl', ''.join(f'{{"text": {{"a": {i}}}, "label": "{l}"}}\n' for i, l in enumerate(['pos', 'neg'] * 10)))),
    C('bad_chat_role',         lambda ws, mp, p: _load(ws, [{'messages': [{'role': 'robot', 'content': 'hi'}]}], task='causal')),
    C('chat_without_assistant', lambda ws, mp, p: _load(ws, [{'messages': [{'role': 'user', 'content': 'hi'}]}], task='causal')),
    C('seq2seq_missing_target', lambda ws, mp, p: _load(ws, [{'source': 'a b c'}, {'source': 'd e'}], task='seq2seq')),
    C('qa_answer_not_in_context', lambda ws, mp, p: _load(ws, [{'question': 'q?', 'context': 'abc', 'answers': 'xyz'}], task='qa')),
    # ---- configs
    C('config_missing',        lambda ws, mp, p: _expect_exit(_cli('train', ws/'nope.yaml'))),
    C('config_bad_yaml',       lambda ws, mp, p: _yaml_cfg(ws, 'epochs: [1,\n lr: 2\n')),
    C('config_not_mapping',    lambda ws, mp, p: _yaml_cfg(ws, '- 1\n- 2\n')),
    C('config_unknown_key',    lambda ws, mp, p: _cfg(ws, learning_rate=1e-3)),
    C('config_wrong_type',     lambda ws, mp, p: _cfg(ws, epochs='two')),
    C('config_negative_lr',    lambda ws, mp, p: _cfg(ws, lr=-1e-3)),
    C('config_zero_batch',     lambda ws, mp, p: _cfg(ws, batch_size=0)),
    C('config_zero_epochs',    lambda ws, mp, p: _cfg(ws, epochs=0)),
    C('config_bad_warmup',     lambda ws, mp, p: _cfg(ws, warmup=1.5)),
    C('config_unknown_schedule', lambda ws, mp, p: _cfg(ws, schedule='expo')),
    C('config_nan_lr',         lambda ws, mp, p: _cfg(ws, lr=float('nan'))),
    C('config_negative_max_length', lambda ws, mp, p: _cfg(ws, max_length=-5)),
    C('config_negative_label_smoothing', lambda ws, mp, p: _cfg(ws, label_smoothing=-0.5)),
    C('config_negative_checkpoint_every', lambda ws, mp, p: _cfg(ws, checkpoint_every=-3)),
    C('config_lora_rank_zero', lambda ws, mp, p: _cfg(ws, freeze='lora', lora={'r': 0})),
    C('override_without_equals', lambda ws, mp, p: _expect_exit(_cli('train', p, '--set', 'lr')), lambda ws, mp: write_config(ws/'c.yaml', run_config(ws))),
    C('unknown_metric',        lambda ws, mp, p: _train(ws, metrics=['acuracy'])),
    C('fp16_on_cpu',           lambda ws, mp, p: _train(ws, precision='fp16')),
    C('data_file_missing',     lambda ws, mp, p: _train(ws, data={'train': str(ws/'gone.csv')})),
    # ---- models and tokenizers
    C('model_path_missing',    lambda ws, mp, p: _train(ws, model=str(ws/'no_model'))),
    C('model_no_config',       lambda ws, mp, p: _train(ws), _rm('model/config.json')),
    C('model_config_not_json', lambda ws, mp, p: _train(ws), _write('model/config.json', b'{not json')),
    C('model_weights_truncated', lambda ws, mp, p: _train(ws), _write('model/model.safetensors', lambda f: f.read_bytes()[:1000])),
    C('tokenizer_model_mismatch', lambda ws, mp, p: _train(ws), _mismatched_tokenizer),
    C('oversized_max_length',  lambda ws, mp, p: _train(ws, max_length=512, data={'validation': None}),
                               _write('train.csv', ('text,label\n' + ''.join(f'"{LONG}",{l}\n' for l in ['pos', 'neg'] * 10)).encode())),
    C('one_huge_row_cannot_split', lambda ws, mp, p: _train(ws, data={'validation': None}), _write('train.csv', b'text,label\n"' + b'word ' * 4_000_000 + b'",pos\n')),
    # ---- freezing
    C('freeze_to_out_of_range', lambda ws, mp, p: _freeze_to_range(ws)),
    C('freeze_pattern_no_match', lambda ws, mp, p: _freeze_pattern_none(ws)),
    C('lora_unknown_target',   lambda ws, mp, p: _lora_bad_target(ws)),
    # ---- training
    C('learner_negative_lr',   lambda ws, mp, p: _learner(ws, lr=-1.0)),
    C('learner_grad_accum_zero', lambda ws, mp, p: _learner(ws, grad_accum=0)),
    C('dataloaders_batch_size_zero', lambda ws, mp, p: _batch_size_zero_dataloaders(ws)),
    C('diverging_loss_nan',    lambda ws, mp, p: _nan_loss_run(ws)),
    C('damaged_checkpoint_resume', lambda ws, mp, ck: _resume_from(ws, ck), _damage_a_checkpoint),
    # ---- output folder
    C('output_dir_is_file',    lambda ws, mp, p: _train(ws, output_dir=str(p)), F('out', 'precious')),
    C('output_dir_readonly',   lambda ws, mp, p: _readonly_output(ws, mp)),
    C('output_dir_readonly_on_write', lambda ws, mp, p: _readonly_output_open(ws, mp)),
    C('output_dir_unwritable_parent', lambda ws, mp, p: _train(ws, output_dir='/proc/sft_nb_reliability_out')),
    C('output_dir_other_config', lambda ws, mp, p: _train(ws, epochs=1, batch_size=50, lr=5e-4, data={'train': str(ws/'train.csv')}),
                               lambda ws, mp: _train(ws, epochs=1, batch_size=50, data={'train': str(ws/'train.csv')})),
    C('disk_full_on_checkpoint', lambda ws, mp, p: _disk_full_on_checkpoint(ws, mp)),
    # ---- inference
    C('predict_non_strings',   lambda ws, mp, p: _predict_non_strings(ws)),
    C('generate_bad_prompts',  lambda ws, mp, p: _generate_bad_prompts(ws)),
    C('inference_folder_missing', lambda ws, mp, p: _expect_exit(_cli('predict', '--model', ws/'nothing', '--text', 'hi'))),
    C('inference_no_weights',  lambda ws, mp, p: __import__('sft_nb.inference', fromlist=['x']).load_model_for_inference(ws/'model'), _rm('model/model.safetensors')),
    C('eval_unknown_labels',   lambda ws, mp, p: _expect_exit(_cli('eval', '--model', ws/'saved', '--data', p)),
                               lambda ws, mp: (_save_tiny(ws), _csv(ws, 'eval.csv', 'text,label\ngood,pos\nbad,meh\n'))[1]),
]

# Cases that expose library bugs: the library is fixed elsewhere; strict xfail flags the day they start passing.
XFAIL = {
}

def _params():
    for name, prep, act in BATTERY:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
        yield pytest.param(prep, act, id=name, marks=marks)

@pytest.mark.parametrize('prep,act', list(_params()))
def test_bad_input(prep, act, tiny_ws, monkeypatch, capsys):
    "One bad input: one SftError (what, where or fix), nothing that existed before damaged."
    ctx = prep(tiny_ws, monkeypatch)
    before = tree_hashes(tiny_ws)
    with pytest.raises(Exception) as ei: act(tiny_ws, monkeypatch, ctx)
    e = ei.value
    assert isinstance(e, SftError), f"raw {type(e).__module__}.{type(e).__name__} instead of an SftError: {str(e)[:500]}"
    assert e.where or e.fix, f"the SftError says neither where nor how to fix: {e}"
    assert 'Traceback' not in capsys.readouterr().err
    lost = damaged(before, tree_hashes(tiny_ws))
    assert not lost, f"files damaged or deleted: {lost}"

def test_battery_size():
    assert len(BATTERY) >= 30 and len({c[0] for c in BATTERY}) == len(BATTERY)

def test_disk_full_keeps_previous_checkpoint(tiny_ws, monkeypatch):
    "ENOSPC in the middle of the 2nd checkpoint: the 1st stays the latest valid one, no half-written folder is visible, resume works."
    from sft_nb.callbacks.checkpoint import latest_checkpoint, list_checkpoints, verify_checkpoint
    with pytest.raises(SftError) as ei: _disk_full_on_checkpoint(tiny_ws, monkeypatch)
    assert 'No space left on device' in str(ei.value) and 'step-00000002' in str(ei.value.fix)
    root = tiny_ws/'out'/'checkpoints'
    assert [p.name for p in list_checkpoints(root)] == ['step-00000002']
    assert latest_checkpoint(root).name == 'step-00000002' and verify_checkpoint(root/'step-00000002') is None
    assert not [p.name for p in root.iterdir() if p.name.startswith('.')], "temporary checkpoint folders left behind"
    monkeypatch.undo()
    monkeypatch.setenv('SFT_NB_CACHE', os.environ.get('SFT_NB_CACHE', ''))
    learn, res = _train(tiny_ws, epochs=1, checkpoint_every=2, data={'train': str(tiny_ws/'train.csv')}, batch_size=50)
    assert learn.step == 4 and (tiny_ws/'out'/'model'/'model.safetensors').exists()

@pytest.mark.parametrize('words', [pytest.param(200_000, id='1MB'), pytest.param(4_000_000, id='20MB', marks=pytest.mark.slow)])
def test_huge_text_cell_is_truncated_not_fatal(tiny_ws, capsys, words):
    "An oversized input that is still valid (one multi-megabyte text cell among normal rows) trains, truncated and reported."
    import pandas as pd
    from sft_nb.recipe import train
    df = pd.read_csv(tiny_ws/'train.csv').head(40)
    df.loc[len(df)] = ['word ' * words, 'pos']
    df.to_csv(tiny_ws/'train.csv', index=False)
    learn, res = train(run_config(tiny_ws, epochs=1, batch_size=8, checkpoint_every=None))
    assert learn.step == 6 and 'valid_loss' in res
    assert 'max_length 32 (from the config): it truncates 1 of 41 training examples' in capsys.readouterr().out

# ============================================================================================ security
PKG = ROOT/'sft_nb'

def _source():
    return {p.name: p.read_text() for p in sorted(PKG.glob('*.py')) if p.name != '_modidx.py'}

def test_source_loads_weights_safely():
    "No torch.load without weights_only=True, no pickle / yaml.load / eval / exec / allow_pickle in the package source."
    bad = []
    for name, src in _source().items():
        for m in re.finditer(r'torch\.load\(([^)]*)\)', src):
            if 'weights_only=True' not in m.group(1): bad.append(f"{name}: {m.group(0)}")
        for pat in (r'^\s*import pickle', r'^\s*from pickle', r'\bpickle\.loads?\(', r'\bcloudpickle\b', r'\bdill\b', r'read_pickle\(',
                    r'yaml\.load\(', r'yaml\.unsafe_load', r'allow_pickle\s*=\s*True', r'(?<![.\w])eval\(', r'(?<![.\w])exec\(',
                    r'\bjoblib\.load\(', r'\bmarshal\.loads?\('):
            bad += [f"{name}: {m.group(0).strip()}" for m in re.finditer(pat, src, re.M)]
    assert not bad, bad

def test_source_never_trusts_remote_code():
    "`trust_remote_code` appears nowhere in the package: it can only reach transformers if the user passes it in **kw."
    hits = [n for n, src in _source().items() if 'trust_remote_code' in src]
    assert not hits, hits

def test_load_model_passes_no_trust_remote_code(tiny_ws, monkeypatch):
    "load_model / load_model_for_inference call from_pretrained without trust_remote_code (unless the user passes it)."
    import transformers
    from sft_nb.models import load_model
    from sft_nb.inference import load_model_for_inference
    seen = []
    for cls in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForSequenceClassification,
                transformers.BertForSequenceClassification):
        real = cls.from_pretrained.__func__
        def spy(c, *a, _real=real, **k): seen.append(k.get('trust_remote_code')); return _real(c, *a, **k)
        monkeypatch.setattr(cls, 'from_pretrained', classmethod(spy))
    load_model(tiny_ws/'model', 'classification')
    load_model_for_inference(tiny_ws/'model')
    assert seen and not any(seen), seen
    seen.clear()
    load_model(tiny_ws/'model', 'classification', trust_remote_code=True)  # explicit opt-in reaches transformers
    assert True in seen

MARKER_CODE = "import pathlib; pathlib.Path({marker!r}).write_text('executed')"

def _evil_pickle(marker:Path)->bytes:
    class Evil:
        def __reduce__(self): return (exec, (MARKER_CODE.format(marker=str(marker)),))
    return pickle.dumps({'weight': Evil()})

def test_remote_code_in_model_folder_not_run(tiny_ws):
    "A model folder whose config.json points at custom code (auto_map) loads without importing that code."
    from sft_nb.models import load_model
    marker, m = tiny_ws/'EXECUTED', tiny_ws/'model'
    for mod in ('configuration_evil', 'modeling_evil'): (m/f'{mod}.py').write_text(MARKER_CODE.format(marker=str(marker)) + '\n')
    cfg = json.loads((m/'config.json').read_text())
    cfg['auto_map'] = {'AutoConfig': 'configuration_evil.EvilConfig', 'AutoModelForSequenceClassification': 'modeling_evil.EvilModel'}
    (m/'config.json').write_text(json.dumps(cfg))
    try: load_model(m, 'classification')
    except Exception: pass  # refusing is fine too; running the code is not
    assert not marker.exists()

def test_pickled_weights_not_executed(tiny_ws):
    "A model folder holding only a malicious pytorch_model.bin: loading it runs nothing."
    from sft_nb.inference import load_model_for_inference
    marker, m = tiny_ws/'EXECUTED', tiny_ws/'model'
    (m/'model.safetensors').unlink()
    (m/'pytorch_model.bin').write_bytes(_evil_pickle(marker))
    with pytest.raises(Exception): load_model_for_inference(m)
    assert not marker.exists()

def test_pickled_checkpoint_state_not_executed(tiny_ws):
    "A checkpoint whose state.pt is a malicious pickle (manifest recomputed by the attacker): resume runs nothing."
    from sft_nb.callbacks.checkpoint import write_manifest
    marker = tiny_ws/'EXECUTED'
    ck = tiny_ws/'out'/'checkpoints'/'step-00000001'; ck.mkdir(parents=True)
    from safetensors.torch import save_file
    save_file(load_weights(tiny_ws/'model'), str(ck/'model.safetensors'))
    (ck/'state.pt').write_bytes(_evil_pickle(marker))
    (ck/'trainer_state.json').write_text('{}')
    write_manifest(ck)
    with pytest.raises(Exception): _learner(tiny_ws, output_dir=tiny_ws/'out').fit(1, resume=True)
    assert not marker.exists()

def test_pickle_data_file_not_executed(tiny_ws):
    "A .pkl 'data file' with a payload is refused with an SftError before anything unpickles it."
    from sft_nb.data import load_data
    marker, p = tiny_ws/'EXECUTED', tiny_ws/'train.pkl'
    p.write_bytes(_evil_pickle(marker))
    with pytest.raises(SftError, match='format'): load_data(p, 'classification')
    with pytest.raises(SftError): load_data({'train': p}, 'classification')
    assert not marker.exists()

def test_yaml_python_tags_rejected(tiny_ws, capsys):
    "A config with a !!python/object tag is refused (safe loader): an SftError, exit status 2, nothing executed."
    from sft_nb.config import load_config
    from sft_nb.cli import main
    marker = tiny_ws/'EXECUTED'
    p = tiny_ws/'evil.yaml'
    p.write_text(f"epochs: 1\nlr: !!python/object/apply:os.system ['touch {marker}']\n"
                 f"output_dir: !!python/object/new:pathlib.Path ['{tiny_ws}/x']\n")
    with pytest.raises(SftError, match='not valid YAML'): load_config(p)
    assert main(['train', str(p)]) == 2
    assert 'sft-nb: error:' in capsys.readouterr().err and not marker.exists()

def test_yaml_python_tag_in_override_refused(tmp_path, capsys):
    "`--set lr=!!python/...` is refused the same way: an SftError naming --set, exit status 2, nothing executed."
    from sft_nb.config import load_config
    from sft_nb.cli import main
    marker = tmp_path/'EXECUTED'
    evil = f"lr=!!python/object/apply:os.system ['touch {marker}']"
    with pytest.raises(SftError) as ei: load_config(None, [evil])
    assert ei.value.where == '--set'
    assert main(['train', '--set', evil]) == 2
    err = capsys.readouterr().err
    assert 'sft-nb: error:' in err and 'Traceback' not in err and not marker.exists()

def test_run_writes_only_under_output_dir(reference_run):
    """A whole `sft-nb train` run in a subprocess with fresh, empty HOME, TMPDIR, HF_HOME, XDG_CACHE_HOME and working folder:
    afterwards every new or changed file is under output_dir or $SFT_NB_CACHE, the saved model holds no pickle,
    and the checkpoints' one pickle-format file (state.pt) loads with weights_only=True."""
    from sft_nb.inference import pickle_files
    r = reference_run
    outside = [k for k in set(r.after) | set(r.before) if r.after.get(k) != r.before.get(k) and not k.startswith('out/')]
    assert not outside, f"files written or changed outside output_dir: {outside}"
    for k in ('home', 'tmp', 'hf_home', 'xdg', 'cwd'):
        left = [str(p.relative_to(r.jail[k])) for p in r.jail[k].rglob('*')]
        assert not left, f"the run wrote into {k}: {left[:10]}"
    assert list(r.cache.iterdir()), "the tokenization cache should live under SFT_NB_CACHE"
    out = r.out
    assert pickle_files(out/'model') == [] and (out/'model'/'model.safetensors').exists()
    cks = list((out/'checkpoints').iterdir())
    assert cks
    for ck in cks:
        assert sorted(p.name for p in ck.iterdir()) == ['manifest.json', 'model.safetensors', 'state.pt', 'trainer_state.json']
        torch.load(ck/'state.pt', weights_only=True)
    assert [p for p in pickle_files(out) if not p.endswith('state.pt')] == []

# ============================================================================================ long-run stability
def _rss_per_epoch(ws, epochs:int)->list[float]:
    from sft_nb.core import Callback, rss_mb
    from sft_nb.metrics import batch_metric
    import gc
    class RSS(Callback):
        def before_fit(self): self.rss = []
        def after_epoch(self): gc.collect(); self.rss.append(rss_mb())
    cb = RSS()
    learn = _learner(ws, cbs=[cb], metrics=[batch_metric('accuracy')], output_dir=ws/'out')
    learn.fit(epochs)
    return cb.rss, learn.step

@pytest.mark.parametrize('epochs', [pytest.param(8, id='200_steps'), pytest.param(40, id='1000_steps', marks=pytest.mark.slow)])
def test_memory_flat_across_epochs(tiny_ws, epochs):
    "RSS after warm-up (2 epochs) grows by less than 30 MB and 5% over the remaining epochs (25 steps each, batch 8)."
    rss, steps = _rss_per_epoch(tiny_ws, epochs)
    base, last = rss[1], rss[-1]
    growth = last - base
    assert growth < 30 and growth < 0.05 * base, f"RSS grew {growth:.1f} MB over {steps} steps: {[round(r) for r in rss]}"
