"""Fail when a tutorial or the home page has lost the outputs its docs page should show.

    python tools/check_outputs.py [notebook ...]     (default: nbs/index.ipynb and nbs/tutorials/*.ipynb)

The rule, per notebook:
1. *Counted cells* are the code cells that are not empty, not hidden from the page (`#| hide`,
   `#| include: false`, `#| output: false`), not `#| eval: false`, and not import-only (every top-level statement
   an `import` or `from ... import`; a cell that does not parse as Python, say a magic, is counted).
2. A counted cell *shows output* when it has a `display_data` or `execute_result` output, or a `stdout` stream with
   text in it. Warnings alone (`stderr`) and errors do not count.
3. The notebook fails when fewer than half of its counted cells show output (a notebook with no counted cell passes).
4. The notebook also fails for each counted cell that plots but has no image output (`image/png`, `image/jpeg` or
   `image/svg+xml`). A cell *plots* when its top-level code (not the bodies of functions, classes or lambdas it
   defines) calls `plot`, a function whose name starts with `plot_`, `lr_find` (unless `show_plot=False`), `imshow`,
   `scatter`, `hist` or `barh`, or creates a `LivePlotCallback` (unless `live=False`).
5. A notebook whose saved outputs contain an error output fails too: a page should not show a traceback.
6. A notebook that *trains* must have at least one image output somewhere (its learning curves, say): a page that
   trains a model should show how the training went. It trains when the top-level code of a cell that runs (not
   `#| eval: false`; function, class and lambda bodies excepted, as in rule 4) calls a method `fit`, `fit_one_cycle`
   or `fine_tune`, calls `train` imported from `sft_nb` (`from sft_nb.cli import train`, or `sft_nb.cli.train(...)`
   through an imported module), or runs `sft-nb train` (a shell line such as `!sft-nb train run.yaml`, or a string
   or list of strings passed to a call, as `subprocess.run(['sft-nb', 'train', ...])`).

Exit status 1 with one line per problem; 0 when every notebook passes. Refresh outputs with tools/refresh_outputs.py.

    python tools/check_outputs.py --provenance [notebook ...]   (default: every notebook in nbs/)

lists instead the notebooks whose page needs the provenance line that tools/refresh_outputs.py writes
(`*Outputs on this page were produced on ...*`, a markdown cell) and lacks it: a page needs it when what it shows
depends on the machine that ran it, that is when it has `#| slow` cells (real pretrained models; their outputs, or
their lack of any, come from one run) or when a shown output has a duration or a rate (`12.3 s`, `01:02`, `it/s`).
Exit status 1 when one lacks it."""
import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLOT_NAMES = {'plot', 'lr_find', 'imshow', 'scatter', 'hist', 'barh', 'LivePlotCallback'}
OFF_SWITCH = {'lr_find': 'show_plot', 'LivePlotCallback': 'live'}  # keyword that, when False, means no plot
IMAGE_TYPES = ('image/png', 'image/jpeg', 'image/svg+xml')
FIT_METHODS = {'fit', 'fit_one_cycle', 'fine_tune'}  # Learner methods that train
CLI_TRAIN = re.compile(r'\bsft-nb\s+train\b')

def directives(src:str)->dict:
    "The `#| key: value` directives at the top of a cell, as {key: value} (a bare flag maps to '')."
    out = {}
    for line in src.splitlines():
        s = line.strip()
        if not s: continue
        if not s.startswith('#|'): break
        for part in s[2:].strip().split(','):
            k, _, v = part.strip().partition(':')
            if k: out[k.strip()] = v.strip()
    return out

def is_hidden(src:str)->bool:
    "True for a cell whose code or output the page does not show, or that never runs."
    d = directives(src)
    return 'hide' in d or d.get('include') == 'false' or d.get('output') == 'false' or d.get('eval') == 'false'

def parse(src:str)->ast.Module|None:
    "The cell's Python syntax tree, or None for a cell that is not plain Python (magics, shell lines)."
    try: return ast.parse(src)
    except SyntaxError: return None

def is_import_only(src:str)->bool:
    "True when every top-level statement is an import."
    tree = parse(src)
    return tree is not None and bool(tree.body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)

def _name(func)->str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ''

def _switched_off(call:ast.Call, name:str)->bool:
    kw = OFF_SWITCH.get(name)
    return any(k.arg == kw and isinstance(k.value, ast.Constant) and k.value.value is False for k in call.keywords)

def top_level_calls(tree:ast.Module):
    "The calls the module's top-level code makes, skipping the bodies of the functions, classes and lambdas it defines."
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)): continue
        if isinstance(node, ast.Call): yield node
        todo.extend(ast.iter_child_nodes(node))

def plots(src:str)->bool:
    "True when the cell's top-level code draws a plot (see rule 4)."
    tree = parse(src)
    if tree is None: return False
    for call in top_level_calls(tree):
        n = _name(call.func)
        if (n in PLOT_NAMES or n.startswith('plot_')) and not _switched_off(call, n): return True
    return False

def sft_nb_names(srcs:list[str])->tuple[set, set]:
    "The names the cells bind to sft_nb's `train` function, and to sft_nb modules (`import sft_nb.cli as cli`)."
    trains, modules = set(), set()
    for src in srcs:
        tree = parse(src)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'sft_nb':
                for a in node.names:
                    if a.name == 'train': trains.add(a.asname or a.name)
                    elif node.module == 'sft_nb': modules.add(a.asname or a.name)  # `from sft_nb import cli`
            if isinstance(node, ast.Import):
                modules |= {a.asname or a.name.split('.')[0] for a in node.names if a.name.split('.')[0] == 'sft_nb'}
    return trains, modules

def _root(node)->str:
    while isinstance(node, ast.Attribute): node = node.value
    return node.id if isinstance(node, ast.Name) else ''

def _runs_cli_train(call:ast.Call)->bool:
    "True when a call gets `sft-nb train` as a command string or as a list of strings."
    for a in call.args:
        if isinstance(a, ast.Constant) and isinstance(a.value, str) and CLI_TRAIN.search(a.value): return True
        if isinstance(a, (ast.List, ast.Tuple)):
            words = [e.value for e in a.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if CLI_TRAIN.search(' '.join(words)): return True
    return False

def trains(src:str, train_names:set=frozenset(), modules:set=frozenset())->bool:
    "True when the cell's top-level code trains a model (see rule 6); `train_names`, `modules`: from `sft_nb_names`."
    tree = parse(src)
    if tree is None:  # shell lines and magics: `!sft-nb train ...`, `%%bash`
        return any(CLI_TRAIN.search(l) for l in src.splitlines() if not l.strip().startswith('#'))
    for call in top_level_calls(tree):
        f = call.func
        if isinstance(f, ast.Attribute) and f.attr in FIT_METHODS: return True
        if isinstance(f, ast.Name) and f.id in train_names: return True
        if isinstance(f, ast.Attribute) and f.attr == 'train' and _root(f) in modules: return True
        if _runs_cli_train(call): return True
    return False

def shows_output(cell:dict)->bool:
    "True when the cell has a display, a result, or printed text (rule 2)."
    for o in cell.get('outputs', []):
        if o['output_type'] in ('display_data', 'execute_result'): return True
        if o['output_type'] == 'stream' and o.get('name') == 'stdout' and ''.join(o.get('text', '')).strip(): return True
    return False

def has_image(cell:dict)->bool:
    return any(t in o.get('data', {}) for o in cell.get('outputs', []) for t in IMAGE_TYPES)

def check_notebook(path:Path)->tuple[list[str], str]:
    "The problems of one notebook, and a one-line summary."
    nb = json.loads(Path(path).read_text())
    problems, counted, shown, trained, images = [], 0, 0, None, False
    code = [(i, c, ''.join(c['source'])) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code']
    train_names, modules = sft_nb_names([src for _, _, src in code])
    for i, c, src in code:
        images |= has_image(c)
        if trained is None and directives(src).get('eval') != 'false' and trains(src, train_names, modules): trained = i
        if any(o['output_type'] == 'error' for o in c.get('outputs', [])):
            problems.append(f"cell {i} has a saved error output ({src.strip().splitlines()[0][:60]!r})")
        if not src.strip() or is_hidden(src) or is_import_only(src): continue
        counted += 1
        shown += shows_output(c)
        if plots(src) and not has_image(c):
            problems.append(f"cell {i} plots but has no image output ({src.strip().splitlines()[0][:60]!r})")
    if trained is not None and not images:
        problems.append(f"it trains (cell {trained}) but has no image output: plot the learning curves "
                        "(sft_nb.callbacks.progress.plot_history) and refresh the outputs")
    if counted and 2*shown < counted:
        problems.insert(0, f"only {shown} of {counted} counted code cells show output (at least half must)")
    return problems, f"{shown}/{counted} counted cells show output"

STAMP_START = '*Outputs on this page'  # the provenance line, as tools/refresh_outputs.py writes it
TIMING = re.compile(r'\b\d+(?:\.\d+)?\s?(?:s|ms|sec|min)\b|\b\d{1,2}:\d{2}(?::\d{2})?\b|\b(?:it|samples|examples|tokens|steps)/s\b')

def output_text(cell:dict)->str:
    "The text a cell's outputs show: streams, and the plain or HTML form of results and displays."
    parts = []
    for o in cell.get('outputs', []):
        if o['output_type'] == 'stream': parts.append(''.join(o.get('text', '')))
        for k in ('text/plain', 'text/html', 'text/markdown'):
            if k in o.get('data', {}): parts.append(''.join(o['data'][k])); break
    return '\n'.join(parts)

def has_provenance(nb:dict)->bool:
    return any(c['cell_type'] == 'markdown' and ''.join(c['source']).lstrip().startswith(STAMP_START) for c in nb['cells'])

def provenance_reason(nb:dict)->str|None:
    "Why the page needs a provenance line (see --provenance), or None when it does not."
    code = [(i, c, ''.join(c['source'])) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code']
    slow = [i for i, c, src in code if 'slow' in directives(src) and directives(src).get('eval') != 'false']
    if slow: return f"{len(slow)} `#| slow` cell(s) (real models), first cell {slow[0]}"
    for i, c, src in code:
        if is_hidden(src): continue
        m = TIMING.search(output_text(c))
        if m: return f"cell {i} shows a timing ({m[0]!r})"
    return None

def check_provenance(path:Path)->str|None:
    "The problem of a notebook that needs a provenance line and lacks it, else None."
    nb = json.loads(Path(path).read_text())
    reason = provenance_reason(nb)
    return f"no provenance line, needed: {reason}" if reason and not has_provenance(nb) else None

def default_notebooks()->list[Path]:
    return [ROOT/'nbs'/'index.ipynb'] + sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))

def _shown_path(p:Path): return p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p

def main_provenance(paths:list[Path])->int:
    paths = paths or sorted((ROOT/'nbs').glob('*.ipynb')) + sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))
    lacking = [(p, msg) for p in paths if (msg := check_provenance(p))]
    for p, msg in lacking: print(f"FAIL {_shown_path(p)}: {msg}")
    print(f"{len(paths)} notebooks: {len(lacking)} lack the provenance line their page needs"
          + (": refresh them with python tools/refresh_outputs.py" if lacking else ""))
    return 1 if lacking else 0

def main(argv:list[str])->int:
    if '--provenance' in argv: return main_provenance([Path(a) for a in argv if a != '--provenance'])
    paths = [Path(a) for a in argv] or default_notebooks()
    failed = 0
    for p in paths:
        problems, summary = check_notebook(p)
        name = p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p
        print(f"{'FAIL' if problems else 'ok  '} {name}: {summary}")
        for msg in problems: print(f"     - {msg}")
        failed += bool(problems)
    if failed: print(f"{failed} notebook(s) lost outputs: run python tools/refresh_outputs.py on them, then nbdev-clean")
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
