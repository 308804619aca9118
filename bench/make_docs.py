"""Render bench/README.md into the docs page nbs/tutorials/benchmarks.ipynb (markdown cells only, one per `##` section).

    .venv/bin/python bench/make_docs.py && nbdev-clean --fname nbs/tutorials/benchmarks.ipynb
"""
from pathlib import Path
import hashlib, json, re

ROOT = Path(__file__).resolve().parent.parent

def main():
    text = (ROOT / 'bench' / 'README.md').read_text()
    # Links relative to bench/ point into the repository from the docs page.
    text = re.sub(r'\]\((?!https?:|#)([^)]+)\)', lambda m: f"](https://github.com/sft-nb/sft_nb/blob/main/bench/{m.group(1)})", text)
    parts = re.split(r'\n(?=## )', text.strip())
    # plain JSON (no nbformat dependency); cell ids from the section titles, so a re-render changes only what changed
    cell = lambda src: {'cell_type': 'markdown', 'id': hashlib.sha1(src.split('\n')[0].encode()).hexdigest()[:8], 'metadata': {},
                        'source': [l + '\n' for l in src.split('\n')[:-1]] + [src.split('\n')[-1]]}
    nb = {'cells': [cell(p.strip()) for p in parts], 'nbformat': 4, 'nbformat_minor': 5,
          'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}}
    out = ROOT / 'nbs' / 'tutorials' / 'benchmarks.ipynb'
    out.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f"wrote {out} ({len(nb['cells'])} markdown cells)")

if __name__ == '__main__': main()
