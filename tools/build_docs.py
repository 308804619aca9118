"""Build the docs site into _docs/ without Quarto: nbdev's notebook processing, then the pure-Python smalldocs renderer.
Users who have Quarto can run `nbdev-docs` instead; both read the same nbs/_quarto.yml."""
import os, shutil, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
os.chdir(root)
from nbdev.config import get_config
from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
from nbdev.serve import proc_nbs

def main():
    cfg = get_config()
    refresh_quarto_yml()
    nbdev_sidebar()
    proc_nbs(n_workers=1)  # writes _proc/: notebooks with directives processed and show_doc cells added
    proc = root/'_proc'
    out = root/cfg.doc_path.name
    smalldocs = Path(sys.executable).with_name('smalldocs')
    subprocess.run([str(smalldocs), 'render', str(proc)], check=True)
    built = proc/cfg.doc_path.name
    if built.resolve() != out.resolve():
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(str(built), str(out))
    pages = sorted(p.relative_to(out) for p in out.rglob('*.html'))
    print(f"docs: {len(pages)} pages in {out.relative_to(root)}/ ({', '.join(map(str, pages[:12]))}{' ...' if len(pages) > 12 else ''})")
    if not (out/'index.html').exists(): sys.exit("docs build failed: no index.html")

if __name__ == '__main__': main()
