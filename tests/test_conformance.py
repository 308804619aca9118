"""The conformance matrix: every task and kind of label x every split layout x every command that applies to it.

Each cell trains a tiny random-init model through `sft-nb train` (in this process, `sft_nb.cli.main`, in the
precision this machine picks: CI runs the file again with the other one forced) and checks that
- the run finishes and saves a folder that plain `transformers` loads, with `metrics.json` equal to what it printed;
- with a test file, the run's `test_` metrics are exactly the keys the task table declares (`Task.score_keys`), each
  on its declared scale, and **equal** what `sft-nb eval` reports for the saved folder on the same file;
- `sft-nb predict` on the folder equals what plain `transformers` computes from it (full precision: fp32);
- `sft-nb chat` answers every turn of a causal model.
Bundled model names work in `eval`, `predict` and `chat` as they do in `train`."""
from __future__ import annotations
import io, json, math, random, contextlib
from pathlib import Path
import pytest
import torch
import yaml

TASK_KINDS = ('single_label', 'multi_label', 'regression', 'qa', 'seq2seq', 'causal')
LAYOUTS = {'train': ('train',), 'train+validation': ('train', 'validation'), 'train+test': ('train', 'test'),
           'train+validation+test': ('train', 'validation', 'test')}
ROWS = {'train': 48, 'validation': 12, 'test': 20}  # a test split larger than validation (QA once failed on that)
WORDS = 'the a movie film story plot actor scene music really very quite'.split()
COLOURS = ('red', 'green', 'blue', 'amber')
CITIES = {'france': 'paris', 'italy': 'rome', 'germany': 'berlin', 'spain': 'madrid'}

@pytest.fixture(autouse=True)
def _quiet_one_thread(sft_cache):
    "Tiny models on one thread (same numerics every run, no OpenMP spinning on a busy 2-core machine), offline, private cache."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def sft_nb(*argv, stdin:str|None=None)->tuple[int, str, str]:
    "Run the `sft-nb` command line in this process: (exit status, stdout, stderr)."
    import sys
    from sft_nb.cli import main
    out, err = io.StringIO(), io.StringIO()
    old_in = sys.stdin
    if stdin is not None: sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in argv])
    finally: sys.stdin = old_in
    return code, out.getvalue(), err.getvalue()

# ------------------------------------------------------------------------------------------------ data of each kind
def make_rows(kind:str, n:int, rng:random.Random)->list[dict]:
    "`n` rows of a user's file for `kind`, in the user's own column names (mapped with `data.columns`)."
    def words(k): return ' '.join(rng.sample(WORDS, k))
    rows = []
    for i in range(n):
        c = COLOURS[i % 3] if kind == 'single_label' else rng.choice(COLOURS)
        if kind == 'single_label': rows.append({'review': f"{words(3)} {c} {words(2)}", 'colour': c})
        elif kind == 'multi_label':
            tags = sorted(rng.sample(COLOURS[:3], rng.choice([1, 2])))
            rows.append({'review': f"{words(2)} {' '.join(tags)} {words(2)}", 'tags': '|'.join(tags)})
        elif kind == 'regression':
            k = rng.randint(0, 4); rows.append({'review': f"{words(3)} {' '.join(['great'] * k)}", 'stars': float(k)})
        elif kind == 'qa':
            country = rng.choice(list(CITIES))
            rows.append({'q': f'what is the capital of {country}?', 'passage': f'{words(2)} the capital of {country} is {CITIES[country]} . {words(4)}',
                         'a': CITIES[country]})
        elif kind == 'seq2seq':
            s = rng.sample(WORDS, 4); rows.append({'en': ' '.join(s), 'rev': ' '.join(s[::-1])})
        else: rows.append({'instruction': f'{words(4)} {c}', 'output': c})
    return rows

COLUMNS = {'single_label': {'text': 'review', 'label': 'colour'}, 'multi_label': {'text': 'review', 'label': 'tags'},
           'regression': {'text': 'review', 'label': 'stars'}, 'qa': {'question': 'q', 'context': 'passage', 'answers': 'a'},
           'seq2seq': {'source': 'en', 'target': 'rev'}, 'causal': {}}
TASK = {'single_label': 'classification', 'multi_label': 'classification', 'regression': 'classification', 'qa': 'qa',
        'seq2seq': 'seq2seq', 'causal': 'causal'}
FAMILY = {'qa': 'bert', 'seq2seq': 't5', 'causal': 'llama'}

@pytest.fixture(scope='session')
def tiny_models(tmp_path_factory)->dict:
    "One saved tiny random-init model folder per task (dropout off: every forward pass is deterministic)."
    from sft_nb.assets import tiny_model
    root = tmp_path_factory.mktemp('conformance_models')
    out = {}
    for task, family in (('classification', 'bert'), ('qa', 'bert'), ('seq2seq', 't5'), ('causal', 'llama')):
        tiny_model(family, task, save_to=root/task)
        out[task] = root/task
    return out

def write_run(ws:Path, kind:str, layout:str, model:Path, **extra)->tuple[Path, dict]:
    "Data files of `layout` and a YAML run config a user would write; returns (config path, file per split)."
    rng = random.Random(f'{kind}-{layout}')
    files = {}
    for split in LAYOUTS[layout]:
        files[split] = ws/f'{split}.jsonl'
        files[split].write_text(''.join(json.dumps(r) + '\n' for r in make_rows(kind, ROWS[split], rng)))
    cfg = {'task': TASK[kind], 'model': str(model), 'epochs': 1, 'lr': 3e-3, 'batch_size': 8, 'max_length': 40,
           'checkpoint_every': None, 'output_dir': str(ws/'run'),
           'data': {**{k: str(v) for k, v in files.items()}, 'columns': COLUMNS[kind]},
           'generation': {'max_new_tokens': 6, 'examples': 8, 'batch_size': 4}}  # not eval's defaults: eval must read the run's
    if kind in ('multi_label', 'regression'): cfg['problem_type'] = kind
    if kind == 'multi_label': cfg['data']['label_sep'] = '|'
    cfg.update(extra)
    (ws/'run.yaml').write_text(yaml.safe_dump(cfg))
    return ws/'run.yaml', files

def _close(a, b, eps:float=1e-4)->bool:
    if isinstance(a, float) and math.isnan(a): return isinstance(b, float) and math.isnan(b)
    return abs(a - b) <= eps * max(1.0, abs(b))

# -------------------------------------------------------------------------------------------- predict vs transformers
def plain_predict(kind:str, folder:Path, text:str, context:str|None=None, max_new_tokens:int=6):
    "What plain `transformers` computes from the saved folder, in fp32, for one input."
    import transformers as tf
    tok = tf.AutoTokenizer.from_pretrained(folder)
    if kind in ('single_label', 'multi_label', 'regression'):
        m = tf.AutoModelForSequenceClassification.from_pretrained(folder).eval()
        with torch.no_grad(): logits = m(**tok([text], return_tensors='pt')).logits[0].float()
        return logits.tolist() if kind == 'regression' else (logits.sigmoid() if kind == 'multi_label' else logits.softmax(-1)).tolist()
    if kind == 'qa':
        m = tf.AutoModelForQuestionAnswering.from_pretrained(folder).eval()
        enc = tok([text], [context], return_tensors='pt', return_offsets_mapping=True)
        offsets, seq = enc.pop('offset_mapping')[0].tolist(), enc.sequence_ids(0)
        with torch.no_grad(): out = m(**enc)
        s, e = out.start_logits[0], out.end_logits[0]
        ctx = [i for i, sid in enumerate(seq) if sid == 1]
        best = max(((s[i] + e[j]).item(), i, j) for i in ctx for j in ctx if i <= j < i + 30)
        return context[offsets[best[1]][0]:offsets[best[2]][1]]
    if kind == 'seq2seq':
        m = tf.AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        ids = m.generate(**tok([text], return_tensors='pt'), max_new_tokens=max_new_tokens, do_sample=False)
        return tok.decode(ids[0], skip_special_tokens=True).strip()
    m = tf.AutoModelForCausalLM.from_pretrained(folder).eval()
    if tok.chat_template: ids = tok.apply_chat_template([{'role': 'user', 'content': text}], add_generation_prompt=True, return_tensors='pt', return_dict=True)
    else: ids = tok([text], return_tensors='pt')
    out = m.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True).strip()

def check_predict(kind:str, run:Path, files:dict):
    "`sft-nb predict` on the run folder equals plain `transformers` on its model folder."
    row = json.loads(files['train'].read_text().splitlines()[0])
    cols = COLUMNS[kind]
    if kind == 'qa':
        code, out, err = sft_nb('predict', '--model', run, '--question', row['q'], '--context', row['passage'])
        assert code == 0, err
        assert json.loads(out)['prediction']['answer'] == plain_predict(kind, run/'model', row['q'], row['passage'])
        return
    text = row[cols.get('text') or cols.get('source') or 'instruction']
    code, out, err = sft_nb('predict', '--model', run, '--text', text, '--max-new-tokens', 6)
    assert code == 0, err
    assert 'computed in fp32' in err, err  # it says what it used
    pred, want = json.loads(out)['prediction'], plain_predict(kind, run/'model', text)
    if kind == 'regression': assert _close(pred['value'], want[0], 1e-5), (pred, want)
    elif kind in ('single_label', 'multi_label'): assert all(_close(a, b, 1e-5) for a, b in zip(pred['probs'], want)), (pred, want)
    else: assert pred == want, (pred, want)

# ----------------------------------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('kind', TASK_KINDS)
def test_conformance(kind, layout, tiny_models, tmp_path):
    from sft_nb.core import get_task
    cfg_path, files = write_run(tmp_path, kind, layout, tiny_models[TASK[kind]])
    code, out, err = sft_nb('train', cfg_path, '--quiet')
    assert code == 0, err
    res, run = json.loads(out), tmp_path/'run'
    for f in ('model/config.json', 'model/model.safetensors', 'model/run_card.json', 'metrics.json', 'config.yaml'): assert (run/f).exists(), f
    assert json.loads((run/'metrics.json').read_text()) == res
    assert 'valid_loss' in res  # validation held out of train when no file is given
    keys = get_task(TASK[kind]).score_keys(kind if TASK[kind] == 'classification' else None)
    if 'test' in files:
        test = {k.removeprefix('test_'): v for k, v in res.items() if k.startswith('test_')}
        assert list(test) == list(keys), (list(test), list(keys))  # the declared keys, in order: `test_loss`, never `test_valid_loss`
        for k, v in test.items():
            lo, hi = keys[k][1:]
            assert math.isnan(v) or lo <= v <= hi, f"{k}={v} outside its scale {lo}..{hi}"
        argv = ['eval', '--model', run, '--data', files['test'], *[a for r, c in COLUMNS[kind].items() for a in ('--column', f'{r}={c}')]]
        code, out, err = sft_nb(*argv)
        assert code == 0, err
        ev = json.loads(out)
        assert list(ev) == list(test) and all(_close(ev[k], test[k]) for k in ev), f"the run's test metrics {test}\n!= sft-nb eval {ev}"
        if kind == 'multi_label':  # the threshold chosen on validation and saved, never one chosen on test
            saved = json.loads((run/'model'/'config.json').read_text())['multi_label_threshold']
            assert test['threshold'] == pytest.approx(saved)
        if kind in ('seq2seq', 'causal'): assert test['generated_examples'] == 8  # the run's generation.examples
    else: assert not any(k.startswith('test_') for k in res)
    check_predict(kind, run, files)
    if kind == 'causal':
        code, out, err = sft_nb('chat', '--model', run, '--max-new-tokens', 4, stdin='hello\nwhat colour?\n')
        assert code == 0, err
        assert len(out.splitlines()) == 2

# -------------------------------------------------------------------------------------------- single findings
def test_eval_says_what_scores_mean(tiny_models, tmp_path):
    "`sft-nb eval` names the precision it computed in and what each key means (f1 of a single-label model is macro-F1)."
    cfg_path, files = write_run(tmp_path, 'single_label', 'train+test', tiny_models['classification'])
    assert sft_nb('train', cfg_path, '--quiet')[0] == 0
    code, out, err = sft_nb('eval', '--model', tmp_path/'run', '--data', files['test'], '--column', 'text=review', '--column', 'label=colour')
    assert code == 0 and 'computed in fp32' in err and 'f1: macro-F1' in err, err

def test_causal_test_rows_longer_than_train(tiny_models, tmp_path):
    "max_length chosen from train cuts longer test responses away: refused with the keys that choose otherwise, which work."
    cfg_path, files = write_run(tmp_path, 'causal', 'train+validation+test', tiny_models['causal'], max_length=None)
    long = [{'instruction': ' '.join(['word'] * 30), 'output': 'red'} for _ in range(3)]
    files['test'].write_text(files['test'].read_text() + ''.join(json.dumps(r) + '\n' for r in long))
    code, _, err = sft_nb('train', cfg_path, '--quiet')
    assert code == 2 and 'truncated away entirely in 3 row(s)' in err and 'max_length_from: all' in err and 'drop_truncated: true' in err, err
    code, out, err = sft_nb('train', cfg_path, '--quiet', '--set', 'max_length_from=all', '--set', f'output_dir={tmp_path/"all"}')
    assert code == 0, err
    assert json.loads((tmp_path/'all'/'model'/'run_card.json').read_text())['max_length']['max_length'] >= 30
    code, out, err = sft_nb('train', cfg_path, '--set', 'drop_truncated=true', '--set', f'output_dir={tmp_path/"drop"}')
    assert code == 0, err
    assert 'test: dropped 3 row(s)' in out, out

def test_group_by_length_key(tiny_models, tmp_path):
    "`group_by_length: false` in a run config gives padded random batches (the Python API's `group_by_length=False`)."
    from sft_nb.recipe import train
    from sft_nb.batches import LengthGroupedBatchSampler
    cfg_path, _ = write_run(tmp_path, 'single_label', 'train', tiny_models['classification'], packing=False)
    cfg = yaml.safe_load(cfg_path.read_text())
    grouped, _ = train(cfg, quiet=True)
    assert isinstance(grouped.dls.train.batch_sampler, LengthGroupedBatchSampler)
    plain, _ = train({**cfg, 'group_by_length': False, 'output_dir': str(tmp_path/'random')}, quiet=True)
    assert not isinstance(plain.dls.train.batch_sampler, LengthGroupedBatchSampler)

def test_bundled_names_in_every_command(tmp_path):
    "A bundled name works where a folder does: the base model's baseline score, a prediction and a chat, before any training."
    data = tmp_path/'pairs.jsonl'
    data.write_text(''.join(json.dumps({'prompt': f'Say the colour {c}.', 'completion': c}) + '\n' for c in COLOURS))
    code, out, err = sft_nb('eval', '--model', 'smollm2', '--data', data, '--max-examples', 2, '--max-new-tokens', 3, '--batch-size', 4)
    assert code == 0, err
    ev = json.loads(out)
    assert ev['generated_examples'] == 2 and ev['perplexity'] > 1, ev
    code, out, err = sft_nb('predict', '--model', 'smollm2', '--text', 'Hello', '--max-new-tokens', 3)
    assert code == 0 and json.loads(out)['prediction'], err
    code, out, err = sft_nb('chat', '--model', 'smollm2', '--max-new-tokens', 3, stdin='Hello\n')
    assert code == 0 and len(out.splitlines()) == 1, err
    code, out, err = sft_nb('predict', '--model', 'minilm', '--text', 'Hello')  # an encoder without a head: said so, not "no such folder"
    assert code == 2 and 'does not exist' not in err and 'BertModel' in err, err

def test_plan_before_training(tiny_models, tmp_path):
    "`sft-nb plan` reports the data and the predicted memory and time without training; `sft-nb train` prints the same plan first."
    cfg_path, _ = write_run(tmp_path, 'single_label', 'train+test', tiny_models['classification'])
    code, out, err = sft_nb('plan', cfg_path)
    assert code == 0, err
    assert 'plan: peak memory' in out and 'plan: time' in out and 'duplicates' in out, out
    assert not (tmp_path/'run').exists()  # nothing trained, nothing written
    code, out, err = sft_nb('train', cfg_path)
    assert code == 0, err
    lines = out.splitlines()
    first_step = next(i for i, l in enumerate(lines) if l.startswith('sft-nb: model'))
    assert any(l.startswith('plan: peak memory') for l in lines[:first_step]), out
