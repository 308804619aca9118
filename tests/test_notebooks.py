"Every notebook is a test: its cells run top to bottom, and a failing cell fails the test with its traceback."
import io, sys, contextlib
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as _run_notebook  # renamed so pytest does not collect it

CFG = get_config(Path(__file__).parent)
NBS_PATH = Path(CFG.nbs_path)
NOTEBOOKS = sorted(p for p in NBS_PATH.rglob('*.ipynb')
                   if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS_PATH).parts))

@pytest.fixture(scope='module', autouse=True)
def one_thread_for_tiny_models(request):
    "Tiny models run many times faster on one thread (no thread start-up per op); real models in --slow runs keep them all."
    import torch
    n = torch.get_num_threads()
    if not request.config.getoption('--slow'): torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(NBS_PATH)) for p in NOTEBOOKS])
def test_notebook(nb, request):
    slow = request.config.getoption('--slow')
    skip = [f for f in CFG.tst_flags.split() if not (slow and f == 'slow')]
    err = io.StringIO()
    # nbdev writes the failing cell's traceback to sys.__stderr__: capture it for the assertion message
    real = sys.__stderr__
    sys.__stderr__ = err
    try: ok, secs = _run_notebook(str(nb), skip_flags=skip, force_flags=None,
                                  basepath=str(CFG.config_path), cell_timeout=int(CFG.get('cell_timeout', 1200)))
    finally: sys.__stderr__ = real
    assert ok, f"{nb.relative_to(NBS_PATH)} failed:\n{err.getvalue()[-6000:]}"
