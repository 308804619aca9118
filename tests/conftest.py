def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run cells and tests flagged slow (real pretrained models)")

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: heavy test, runs only with --slow")

def pytest_collection_modifyitems(config, items):
    import pytest
    if config.getoption("--slow"): return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)

# --- fixtures of the reliability tests (tests/test_reliability.py, test_faults.py, test_distributed.py) ---
import pytest as _pytest

@_pytest.fixture(scope='session')
def sft_cache_dir(tmp_path_factory):
    "A private sft_nb cache (tokenized data) for the session: tests never touch the user's cache."
    return tmp_path_factory.mktemp('sft_nb_cache')

@_pytest.fixture
def sft_cache(sft_cache_dir, monkeypatch):
    "Point SFT_NB_CACHE (read at each use by sft_nb.core.cache_dir) at the private cache, and work offline."
    monkeypatch.setenv('SFT_NB_CACHE', str(sft_cache_dir))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    return sft_cache_dir

@_pytest.fixture(scope='session')
def tiny_ws_pristine(tmp_path_factory):
    "A tiny classification workspace built once: model/ (random-init BERT, dropout off), train.csv, valid.csv."
    from helpers_reliability import build_workspace
    return build_workspace(tmp_path_factory.mktemp('tiny_ws'))

@_pytest.fixture
def tiny_ws(tiny_ws_pristine, tmp_path, sft_cache):
    "A fresh copy of the tiny workspace for one test."
    import shutil
    ws = tmp_path/'ws'
    shutil.copytree(tiny_ws_pristine, ws)
    return ws

@_pytest.fixture
def one_thread():
    "Single-threaded torch for the test: tiny models on a busy 2-core machine run many times faster without OpenMP spinning."
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@_pytest.fixture(scope='session')
def reference_run(tmp_path_factory):
    "One uninterrupted, jailed `sft-nb train` of the fault-injection config, shared by the fault and security tests."
    from helpers_reliability import reference_run as run
    r = run(tmp_path_factory.mktemp('reference_run'))
    assert r.returncode == 0, r.stderr[-3000:]
    return r
