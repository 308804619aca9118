"""Render bench/README.md into the docs page nbs/tutorials/benchmarks.ipynb (markdown cells only, one per `##` section).

    .venv/bin/python bench/make_docs.py && nbdev-clean --fname nbs/tutorials/benchmarks.ipynb
"""
from pathlib import Path
import re, nbformat

ROOT = Path(__file__).resolve().parent.parent

def main():
    text = (ROOT / 'bench' / 'README.md').read_text()
    # Links relative to bench/ point into the repository from the docs page.
    text = re.sub(r'\]\((?!https?:|#)([^)]+)\)', lambda m: f"](https://github.com/sft-nb/sft_nb/blob/main/bench/{m.group(1)})", text)
    parts = re.split(r'\n(?=## )', text.strip())
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(p.strip()) for p in parts]
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    out = ROOT / 'nbs' / 'tutorials' / 'benchmarks.ipynb'
    nbformat.write(nb, out)
    print(f"wrote {out} ({len(nb.cells)} markdown cells)")

if __name__ == '__main__': main()
