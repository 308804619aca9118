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
