"The docs tools: tools/check_outputs.py's rule and tools/refresh_outputs.py on a small notebook."
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import check_outputs as co

def code(src, *outputs): return {'cell_type': 'code', 'id': f'c{abs(hash(src)) % 10**8}', 'metadata': {}, 'source': src,
                                 'outputs': list(outputs), 'execution_count': None}
def md(src): return {'cell_type': 'markdown', 'id': f'm{abs(hash(src)) % 10**8}', 'metadata': {}, 'source': src}
RESULT = {'output_type': 'execute_result', 'data': {'text/plain': ['1']}, 'metadata': {}, 'execution_count': 1}
PNG = {'output_type': 'display_data', 'data': {'image/png': 'iVBORw0KGgo=', 'text/plain': ['<Figure>']}, 'metadata': {}}
WARNING = {'output_type': 'stream', 'name': 'stderr', 'text': ['some warning\n']}

def write(tmp_path, cells, name='nb.ipynb'):
    p = tmp_path/name
    p.write_text(json.dumps({'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    return p

def test_counted_cells():
    assert co.is_import_only('import os\nfrom pathlib import Path')
    assert not co.is_import_only('import os\nx = 1')
    assert not co.is_import_only('%timeit 1')  # not plain Python: counted
    assert co.is_hidden('#| hide\nx=1') and co.is_hidden('#| eval: false\nx') and co.is_hidden('#| output: false\nx')
    assert not co.is_hidden('#| slow\nx = 1')

def test_plots():
    assert co.plots('fig = plot_confusion_matrix(y, p)') and co.plots('learn.lr_find()')
    assert co.plots('learn = Learner(m, d, cbs=[LivePlotCallback()])\nlearn.fit(1)')
    assert not co.plots('learn.lr_find(show_plot=False)') and not co.plots('cbs = [LivePlotCallback(live=False)]')
    assert not co.plots('def show():\n    plot_history(h)')  # only defines a function that plots
    assert not co.plots('learn.fit(1)')

def test_half_rule(tmp_path):
    cells = [md('# T'), code('import os'), code('x = 1'), code('x', RESULT), code('y = 2', WARNING), code('#| hide\nz = 3')]
    problems, summary = co.check_notebook(write(tmp_path, cells))
    assert summary == '1/3 counted cells show output' and 'only 1 of 3' in problems[0]
    cells.append(code('print(x)', {'output_type': 'stream', 'name': 'stdout', 'text': ['1\n']}))
    assert co.check_notebook(write(tmp_path, cells)) == ([], '2/4 counted cells show output')

def test_plot_needs_image(tmp_path):
    p = write(tmp_path, [code('plot_history(h)', RESULT)])
    assert co.check_notebook(p)[0] == ["cell 0 plots but has no image output ('plot_history(h)')"]
    assert co.check_notebook(write(tmp_path, [code('plot_history(h)', PNG)]))[0] == []

def test_trains():
    sft = co.sft_nb_names(['from sft_nb.cli import load_config, train', 'import sft_nb.cli as cli\nfrom os import path'])
    assert sft == ({'train'}, {'cli'})
    assert co.trains('learn.fit(1)') and co.trains('learn.fit_one_cycle(1, 1e-3)') and co.trains('learn.fine_tune(2)')
    assert co.trains('learn, res = train(cfg, quiet=True)', *sft) and co.trains('cli.train(cfg)', *sft)
    assert not co.trains('train(cfg)')  # a `train` that is not sft_nb's
    assert not co.trains('model.train()', *sft)  # torch's training mode switch
    assert co.trains('!sft-nb train run.yaml') and co.trains("subprocess.run(['sft-nb', 'train', 'run.yaml'])")
    assert co.trains("subprocess.run('sft-nb train run.yaml', shell=True)")
    assert not co.trains('# sft-nb train run.yaml\nx = 1') and not co.trains('def go():\n    learn.fit(1)')

def test_training_needs_image(tmp_path):
    "A notebook that trains must show an image somewhere, not necessarily in the training cell."
    fit = code('learn.fit(2)', RESULT)
    problems = co.check_notebook(write(tmp_path, [code('from sft_nb.cli import train'), fit, code('train(cfg)', RESULT)]))[0]
    assert problems == ['it trains (cell 1) but has no image output: plot the learning curves '
                        '(sft_nb.callbacks.progress.plot_history) and refresh the outputs']
    assert co.check_notebook(write(tmp_path, [fit, code('fig', PNG)]))[0] == []
    assert co.check_notebook(write(tmp_path, [code('#| eval: false\nlearn.fit(2)'), code('x', RESULT)]))[0] == []  # never runs

def test_saved_error_fails(tmp_path):
    err = {'output_type': 'error', 'ename': 'ValueError', 'evalue': 'x', 'traceback': []}
    assert 'saved error' in co.check_notebook(write(tmp_path, [code('x', RESULT, err)]))[0][0]

def test_main_exit_status(tmp_path, capsys):
    good, bad = write(tmp_path, [code('x', RESULT)], 'good.ipynb'), write(tmp_path, [code('x')], 'bad.ipynb')
    assert co.main([str(good)]) == 0 and co.main([str(good), str(bad)]) == 1
    assert 'FAIL' in capsys.readouterr().out

def test_refresh_outputs(tmp_path):
    "A refresh runs slow cells, keeps display updates in place, captures plots as PNG, keeps `eval: false` outputs, stamps."
    kept = {'output_type': 'stream', 'name': 'stdout', 'text': ['kept\n']}
    p = write(tmp_path, [md('# Title\n> summary'),
        code('import matplotlib.pyplot as plt\nfrom IPython.display import display, HTML'),
        code('#| slow\nimport torch\nfrom sft_nb.core import in_notebook\ntorch.set_num_threads(4)\nin_notebook(), torch.get_num_threads()'),
        code("h = display(HTML('<b>0</b>'), display_id=True)\nfor i in range(3): h.update(HTML(f'<b>{i+1}</b>'))"),
        code('plt.plot([1, 2, 3]);'),
        code('#| eval: false\n1/0', kept)])
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'refresh_outputs.py'), '--threads', '1', str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cells = json.loads(p.read_text())['cells']
    assert cells[1]['source'][0].startswith('*Outputs on this page were produced on') and 'precision `' in cells[1]['source'][0]
    assert 'at most 1 thread;' in cells[1]['source'][0]
    assert cells[3]['outputs'][0]['data']['text/plain'] == ['(True, 1)']  # the library sees a notebook; threads capped
    (upd,) = cells[4]['outputs']
    assert upd['data']['text/html'] == ['<b>3</b>']  # one output, in its last state
    assert 'image/png' in cells[5]['outputs'][0]['data']
    assert cells[6]['outputs'] == [kept]

def test_stamp_updated_in_place():
    import refresh_outputs as ro
    cells = [md('# Title\n> summary'), code('x = 1')]
    ro.set_stamp(cells, '*Outputs on this page: first*')
    ro.set_stamp(cells, '*Outputs on this page: second*')
    assert [c['source'] for c in cells[:2]] == [cells[0]['source'], ['*Outputs on this page: second*']] and len(cells) == 3

def test_refresh_failure_leaves_notebook(tmp_path):
    p = write(tmp_path, [code('x = 1'), code("raise ValueError('boom')")])
    before = p.read_text()
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'refresh_outputs.py'), str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and 'boom' in r.stderr and 'cell 1 failed' in r.stderr
    assert p.read_text() == before

BAD_PAGE = '''<html><body><img src="missing.png"><a href="nope.html">x</a><a href="other.html#there">y</a><table></table>
<div class="cell-output cell-output-display">&lt;table border=1&gt;</div><script>undefinedFunction()</script>
<p>offline, KaTeX missing: \\(x^2\\)</p></body></html>'''

def test_check_site_finds_broken_pages(tmp_path):
    "The browser check on a two-page site: every kind of breakage on one page, none on the other."
    import shutil
    pytest.importorskip('selenium')
    if not (shutil.which('chromium') and shutil.which('chromedriver')): pytest.skip('no chromium / chromedriver: bash tools/setup.sh docs-check')
    (tmp_path/'index.html').write_text(BAD_PAGE)
    (tmp_path/'other.html').write_text('<html><body><h2 id="there">t</h2><table><tr><td>1</td></tr></table></body></html>')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'check_site.py'), '--site', str(tmp_path), '--no-build', '--no-install'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    for msg in ('image did not load', 'link to nope.html answers 404', 'table without cells', "HTML shown as text: '<table",
                'Uncaught ReferenceError', 'server answered 404 for /missing.png', 'ok   other.html',
                "maths shown as TeX, not rendered: '\\\\(x^2\\\\)'"):
        assert msg in r.stdout, (msg, r.stdout)

STRICT_PAGE = '''<html><head><link rel="icon" href="data:,"><link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=X">
</head><body><main class="content" style="width:600px"><table><tr><td style="min-width:900px">wide</td></tr></table>
<div style="overflow-x:auto"><table><tr><td style="min-width:900px">scrolls</td></tr></table></div>
<div class="cell-output"><pre>/work/main/.venv/lib/python3.11/site-packages/x.py:1: FutureWarning: old
Loading weights: 100%|##########| 41/41 [00:00<00:00, 6619.95it/s]</pre></div>
<a href="#nowhere">x</a></main></body></html>'''

def test_check_site_strict(tmp_path):
    "Only --strict fails on overflow, output noise, requests to other hosts and missing anchors; the scrolling table passes."
    import shutil
    pytest.importorskip('selenium')
    if not (shutil.which('chromium') and shutil.which('chromedriver')): pytest.skip('no chromium / chromedriver: bash tools/setup.sh docs-check')
    (tmp_path/'index.html').write_text(STRICT_PAGE)
    run = lambda *a: subprocess.run([sys.executable, str(ROOT/'tools'/'check_site.py'), '--site', str(tmp_path), '--no-build', '--no-install', *a],
                                    capture_output=True, text=True, timeout=300)
    assert run().returncode == 0
    r = run('--strict')
    assert r.returncode == 1, r.stdout + r.stderr
    for msg in ('request to another host (never fetched here): https://fonts.googleapis.com', 'overflows at 1280 px: <table> 9',
                'output noise: Warning:', 'output noise: path: /work/main/.venv/', 'output noise: progress bar: Loading weights: 100%', 'link to index.html#nowhere: no such anchor'):
        assert msg in r.stdout, (msg, r.stdout)
    assert r.stdout.count('overflows at') == 1 and '1 blocks that scroll sideways' in r.stdout

# ---- tools/build_docs.py: what the docs build does to outputs, pages and the README (no browser, no notebook run)
import build_docs as bd

FUTURE = ('/work/main/.venv/lib/python3.11/site-packages/transformers/modeling_utils.py:3312: FutureWarning: '
          '`is_gradient_checkpointing` is deprecated\n  warnings.warn(\n')
BARS = ('Loading weights:   0%|          | 0/41 [00:00<?, ?it/s]\rLoading weights: 100%|##########| 41/41 [00:00<00:00, 6619.95it/s]\n'
        'Writing model shards: 100%|##########| 1/1 [00:00<00:00, 106.64it/s]\n'
        'Map: 100%|##########| 40/40 [00:00<00:00, 472.58 examples/s]\n')

def test_clean_stream_drops_library_noise():
    "Other libraries' progress bars and warnings go; what the notebook printed stays; our own warnings keep a relative path."
    assert bd.clean_stream(FUTURE + BARS) == ''
    assert bd.clean_stream('train: 24 of 640 examples truncated\n' + BARS + 'done\n') == 'train: 24 of 640 examples truncated\ndone\n'
    mine = '/some/other/clone/sft_nb/data.py:10: UserWarning: 3 empty texts\n  warn(msg)\nafter\n'
    assert bd.clean_stream(mine) == 'sft_nb/data.py:10: UserWarning: 3 empty texts\nafter\n'
    assert bd.clean_stream('epoch 1 10%|x| not a bar\n') == 'epoch 1 10%|x| not a bar\n'  # no `n/total [` after the bar

def test_machine_paths_made_relative():
    t = ('https://github.com/sft-nb/sft_nb/blob/main/sft_nb/learner.py#L3 '
         '/work/main/sft_nb/core.py /root/.venv/lib/python3.11/site-packages/peft/x.py runs/minilm')
    assert bd._relative(t) == 'https://github.com/sft-nb/sft_nb/blob/main/sft_nb/learner.py#L3 sft_nb/core.py peft/x.py runs/minilm'

def test_tidy_signature():
    assert bd.tidy_signature('def validate(\n    dl:NoneType=None\n)->dict:') == 'def validate(\n    dl=None\n)->dict:'
    assert bd.tidy_signature('name:str, params:list=<factory>, d:dict=<factory>, data:DataConfig=<factory>') == \
        'name:str, params:list=[], d:dict={}, data:DataConfig=DataConfig()'

def test_tidy_notebook(tmp_path):
    "Outputs tidied in place: a noise-only stream goes, displays lose machine paths, untouched outputs stay as they were."
    noise = {'output_type': 'stream', 'name': 'stderr', 'text': [FUTURE, BARS]}
    html_out = {'output_type': 'display_data', 'metadata': {}, 'data': {'text/plain': ['/work/main/nbs/x.csv'], 'text/html': ['<b>x</b>']}}
    p = write(tmp_path, [md('# T'), code('x', noise, RESULT, html_out)])
    assert bd.tidy_notebook(p) == 2
    outs = json.loads(p.read_text())['cells'][1]['outputs']
    assert outs[0] == RESULT and outs[1]['data'] == {'text/plain': 'nbs/x.csv', 'text/html': ['<b>x</b>']}
    assert bd.tidy_notebook(p) == 0  # nothing left to do

def test_fix_anchors(tmp_path):
    (tmp_path/'loss.html').write_text('<h3 id="tokenloss">TokenLoss</h3><a href="loss.html#tokenloss.head_for"><code>TokenLoss.head_for</code></a>'
                                      '<a href="loss.html#tokenloss">ok</a>')
    (tmp_path/'tutorials').mkdir()
    (tmp_path/'tutorials'/'t.html').write_text('<p><a href="../loss.html#_private"><code>_Private</code></a> and '
                                               '<a href="../loss.html#tokenloss">fine</a></p>')
    fixes = bd.fix_anchors(tmp_path)
    assert (tmp_path/'loss.html').read_text().count('href="loss.html#tokenloss"') == 2
    assert (tmp_path/'tutorials'/'t.html').read_text() == '<p><code>_Private</code> and <a href="../loss.html#tokenloss">fine</a></p>'
    assert len(fixes) == 2 and 'removed' in fixes[1]

def test_make_offline(tmp_path, monkeypatch):
    "Web-font imports leave the stylesheets; KaTeX links point into site_libs/katex, relative to each page."
    dist = tmp_path/'dist'; (dist/'contrib').mkdir(parents=True)
    for f in ('katex.min.js', 'katex.min.css', 'contrib/auto-render.min.js'): (dist/f).write_text('/* katex */')
    monkeypatch.setattr(bd, 'katex_dist', lambda version: dist)
    monkeypatch.setattr(bd, 'katex_version', lambda: '0.16.11')
    site = tmp_path/'site'; (site/'site_libs').mkdir(parents=True); (site/'tutorials').mkdir()
    (site/'site_libs'/'theme.css').write_text('@import url(https://fonts.googleapis.com/css2?family=Source+Sans+Pro:wght@300;400;700&display=swap);:root{}')
    cdn = '<script src="https://cdn.jsdelivr.net/npm/katex@0.16.11/dist/katex.min.js"></script>'
    (site/'loss.html').write_text(cdn); (site/'tutorials'/'t.html').write_text(cdn); (site/'plain.html').write_text('<p>x</p>')
    assert bd.make_offline(site) == {'stylesheets without web fonts': 1, 'pages with local KaTeX': 2}
    assert (site/'site_libs'/'theme.css').read_text() == ':root{}'
    assert (site/'loss.html').read_text() == '<script src="site_libs/katex/katex.min.js"></script>'
    assert (site/'tutorials'/'t.html').read_text() == '<script src="../site_libs/katex/katex.min.js"></script>'
    assert (site/'site_libs'/'katex'/'contrib'/'auto-render.min.js').exists()

PROGRESS_HTML = ('<div><progress value="5" max="5" style="width:300px"></progress> <span>2/2 epochs, 40 steps in 02:02</span></div>'
                 '<table class="dataframe" border="1"><thead><tr><th>epoch</th><th>lr</th></tr></thead>'
                 '<tbody><tr><td>0</td><td>5.56e-05</td></tr></tbody></table>')

def test_readme_plain_markdown():
    "The README shows a training output as a line of text and a Markdown table; code blocks are left alone."
    md = f'```python\nlearn.fit(2)\n```\n\n{PROGRESS_HTML}\n\n    Learner(...)\n\n```html\n<table><tr><td>kept</td></tr></table>\n```\n'
    out = bd.plain_markdown(md)
    assert '2/2 epochs, 40 steps in 02:02\n\n| epoch | lr |\n|---|---|\n| 0 | 5.56e-05 |\n\n    Learner(...)' in out
    assert '<progress' not in out and '<table><tr><td>kept</td></tr></table>' in out

def test_readme_links():
    renames = {'23_cli.ipynb': 'cli.ipynb'}
    md = '[a](tutorials/sentiment.llms.md), [CLI](cli.llms.md#usage), [site](https://x.io/a.llms.md), [m](#the-modules)'
    assert bd.readme_links(md, renames) == ('[a](nbs/tutorials/sentiment.ipynb), [CLI](nbs/23_cli.ipynb#usage), '
                                            '[site](https://x.io/a.llms.md), [m](#the-modules)')

def test_links_follow_renamed_pages(tmp_path):
    "A notebook's link to `23_cli.ipynb` points at the page it becomes (`cli`); prose naming the file does not change."
    (tmp_path/'23_cli.ipynb').write_text(json.dumps({'cells': [md('---\noutput-file: cli.html\n---\n# CLI')]}))
    (tmp_path/'tutorials').mkdir()
    (tmp_path/'tutorials'/'t.ipynb').write_text(json.dumps({'cells': [md('See [the CLI](../23_cli.ipynb), `nbs/23_cli.ipynb`.')]}))
    (tmp_path/'sidebar.yml').write_text('contents:\n  - 23_cli.ipynb\n')
    assert bd.rename_to_output_files(tmp_path) == {'23_cli.ipynb': 'cli.ipynb'}
    assert 'See [the CLI](../cli.ipynb), `nbs/23_cli.ipynb`.' in (tmp_path/'tutorials'/'t.ipynb').read_text()
    assert (tmp_path/'sidebar.yml').read_text() == 'contents:\n  - cli.ipynb\n'

# ---- tools/check_outputs.py --provenance
STAMP = md('*Outputs on this page were produced on 2026-12-02 with `python tools/refresh_outputs.py`*')

def test_provenance(tmp_path, capsys):
    "A page needs the provenance line when it has slow cells or shows a timing; it passes once the line is there."
    slow = code('#| slow\nlearn.fit(1)')
    timed = code('learn.fit(1)', {'output_type': 'stream', 'name': 'stdout', 'text': ['epoch 0 done in 00:03\n']})
    plain = code('x', RESULT)
    assert co.provenance_reason({'cells': [plain]}) is None
    assert co.provenance_reason({'cells': [md('# T'), slow]}) == '1 `#| slow` cell(s) (real models), first cell 1'
    assert co.provenance_reason({'cells': [timed]}) == "cell 0 shows a timing ('00:03')"
    assert co.provenance_reason({'cells': [code('#| slow\n#| eval: false\nx')]}) is None
    lacking, stamped = write(tmp_path, [md('# T'), timed], 'a.ipynb'), write(tmp_path, [md('# T'), STAMP, timed], 'b.ipynb')
    assert co.check_provenance(stamped) is None and 'no provenance line' in co.check_provenance(lacking)
    assert co.main(['--provenance', str(stamped)]) == 0 and co.main(['--provenance', str(lacking), str(stamped)]) == 1
    assert '1 lack the provenance line' in capsys.readouterr().out

# ---- tools/check_site.py, the parts that need no browser
import check_site as cs

def test_other_hosts_and_network_log():
    base = 'http://127.0.0.1:8000/'
    assert cs.other_host(base + 'site_libs/katex/katex.min.js', base) is None and cs.other_host('data:image/png;base64,x', base) is None
    assert 'request to another host' in cs.other_host('https://fonts.googleapis.com/css2?family=X', base)
    log = [{'message': json.dumps({'message': {'method': 'Network.requestWillBeSent', 'params': {'request': {'url': u}}}})}
           for u in (base + 'index.html', 'https://cdn.jsdelivr.net/npm/katex@0.16.11/dist/katex.min.js')]
    log.append({'message': json.dumps({'message': {'method': 'Network.responseReceived', 'params': {}}})})
    assert cs.requests_made(log) == [base + 'index.html', 'https://cdn.jsdelivr.net/npm/katex@0.16.11/dist/katex.min.js']

# ---- the way in: the home page and the sidebar
TUTORIAL_ORDER = ['sentiment', 'question_answering', 'seq2seq', 'instruction_tuning', 'dialogue', 'choosing_a_model']

def test_home_page_links_every_tutorial():
    "A newcomer finds every tutorial and the Benchmarks page from the home page's prose."
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    prose = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    for t in sorted(p.stem for p in (ROOT/'nbs'/'tutorials').glob('*.ipynb')):
        assert f'](tutorials/{t}.ipynb)' in prose, t

def test_sidebar_reading_order():
    "Get started, the tutorials in the method's order, the modules, then Benchmarks and Reliability; every notebook once."
    import yaml
    items = yaml.safe_load((ROOT/'nbs'/'sidebar.yml').read_text())['website']['sidebar']['contents']
    def files(x):
        if isinstance(x, str): return [x]
        if isinstance(x, list): return [f for i in x for f in files(i)]
        return [x['href']] if 'href' in x else files(x.get('contents', []))
    assert items[0] == {'text': 'Get started', 'href': 'index.ipynb'}
    assert [s.get('section') for s in items[1:3]] == ['Tutorials', 'Modules']
    assert files(items[1]) == [f'tutorials/{t}.ipynb' for t in TUTORIAL_ORDER]
    assert items[3:] == ['tutorials/benchmarks.ipynb', 'tutorials/reliability.ipynb']
    sections = [s['section'] for s in items[2]['contents']]
    assert all(s[0].isupper() for s in sections), sections
    every = sorted(str(p.relative_to(ROOT/'nbs')) for p in (ROOT/'nbs').rglob('*.ipynb') 
                   if not any(part.startswith(('.', '_')) for part in p.relative_to(ROOT/'nbs').parts))  # not run folders
    assert sorted(files(items)) == every
