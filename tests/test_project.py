"Project-level checks: the README's set-up commands, the nbdev 3 configuration and the package layout."
import re, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def setup_commands():
    readme = (ROOT/'README.md').read_text()
    blocks = re.findall(r'```(?:sh|bash)\n(.*?)```', readme, re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if 'tools/setup.sh' in line]

def test_readme_has_exactly_two_setup_commands():
    cmds = setup_commands()
    assert len(cmds) == 2, cmds
    main, tests = cmds
    assert main.startswith('bash tools/setup.sh &&') and 'sft-nb train' in main
    assert tests.startswith('bash tools/setup.sh dev &&') and 'pytest' in tests

def test_ci_runs_the_readme_test_command():
    ci = (ROOT/'.ci'/'run').read_text()
    assert "grep -m1 -E '^bash tools/setup.sh dev && ' README.md" in ci and 'eval "$test_cmd"' in ci
    assert ci.rstrip().endswith('eval "$test_cmd"')  # pytest's summary is the last line CI prints

def test_nbdev3_config_lives_in_pyproject():
    assert not (ROOT/'settings.ini').exists()
    cfg = tomllib.loads((ROOT/'pyproject.toml').read_text())
    nbdev = cfg['tool']['nbdev']
    assert nbdev['tst_flags'].split() == ['notest', 'slow']
    assert 'torch==2.13.0' in cfg['project']['dependencies']
    assert cfg['project']['scripts']['sft-nb'] == 'sft_nb.cli:main'

def test_every_module_has_a_notebook():
    nbs = {p.stem for p in (ROOT/'nbs').glob('[0-9][0-9]*_*.ipynb')}  # 06a_kernels: a lettered notebook between two
    mods = {p.stem for p in (ROOT/'sft_nb').glob('*.py') if not p.stem.startswith('_')}
    exported = {n.split('_', 1)[1] for n in nbs}
    assert mods <= exported | {'__main__'}, mods - exported

def test_no_import_circle():
    "No module imports (at the top or inside a function) a module that imports it back, directly or through others."
    import ast
    mods = {p.stem: p for p in (ROOT/'sft_nb').glob('*.py') if not p.stem.startswith('_')}
    deps = {}
    for name, p in mods.items():
        deps[name] = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                mod = node.module.removeprefix('sft_nb.') if node.module.startswith('sft_nb.') else node.module if node.level else None
                if mod in mods: deps[name].add(mod)
    def path_back(start, node, seen):
        for d in deps[node]:
            if d == start: return [node, d]
            if d not in seen:
                seen.add(d)
                if (rest := path_back(start, d, seen)): return [node] + rest
        return None
    circles = [' -> '.join(c) for m in sorted(mods) if (c := path_back(m, m, set()))]
    assert not circles, circles
