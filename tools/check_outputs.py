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

Exit status 1 with one line per problem; 0 when every notebook passes. Refresh outputs with tools/refresh_outputs.py."""
import ast, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLOT_NAMES = {'plot', 'lr_find', 'imshow', 'scatter', 'hist', 'barh', 'LivePlotCallback'}
OFF_SWITCH = {'lr_find': 'show_plot', 'LivePlotCallback': 'live'}  # keyword that, when False, means no plot
IMAGE_TYPES = ('image/png', 'image/jpeg', 'image/svg+xml')

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

def plots(src:str)->bool:
    "True when the cell's top-level code draws a plot (see rule 4)."
    tree = parse(src)
    if tree is None: return False
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)): continue
        if isinstance(node, ast.Call):
            n = _name(node.func)
            if (n in PLOT_NAMES or n.startswith('plot_')) and not _switched_off(node, n): return True
        todo.extend(ast.iter_child_nodes(node))
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
    problems, counted, shown = [], 0, 0
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        if any(o['output_type'] == 'error' for o in c.get('outputs', [])):
            problems.append(f"cell {i} has a saved error output ({src.strip().splitlines()[0][:60]!r})")
        if not src.strip() or is_hidden(src) or is_import_only(src): continue
        counted += 1
        shown += shows_output(c)
        if plots(src) and not has_image(c):
            problems.append(f"cell {i} plots but has no image output ({src.strip().splitlines()[0][:60]!r})")
    if counted and 2*shown < counted:
        problems.insert(0, f"only {shown} of {counted} counted code cells show output (at least half must)")
    return problems, f"{shown}/{counted} counted cells show output"

def default_notebooks()->list[Path]:
    return [ROOT/'nbs'/'index.ipynb'] + sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))

def main(argv:list[str])->int:
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
