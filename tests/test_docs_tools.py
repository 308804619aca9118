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
                        '(sft_nb.progress.plot_history) and refresh the outputs']
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
<div class="cell-output cell-output-display">&lt;table border=1&gt;</div><script>undefinedFunction()</script></body></html>'''

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
                'Uncaught ReferenceError', 'server answered 404 for /missing.png', 'ok   other.html'):
        assert msg in r.stdout, (msg, r.stdout)
