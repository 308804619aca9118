"""Build the docs site into _docs/ without Quarto, and regenerate README.md from nbs/index.ipynb.

nbdev's own processing (`proc_nbs`: directives, `show_doc` API cells, symbol links) writes _proc/, then the
pure-Python `smalldocs` renderer turns that Quarto project into HTML. Users who have Quarto can run `nbdev-docs`
instead; both read the same nbs/_quarto.yml. Usage: python tools/build_docs.py [--no-readme]

Between the two steps the processed notebooks are tidied (`tidy_notebook`): other libraries' progress bars and
warnings leave the saved outputs, absolute paths of the machine that ran them are cut, and signatures read as code
(`dl=None`, not `dl:NoneType=None`). After rendering, the site is made to work offline (`make_offline`: no web fonts,
KaTeX served from site_libs/katex, taken from the npm package), and links to anchors that do not exist are fixed
(`fix_anchors`). The saved notebooks in nbs/ are never changed."""
import functools, html, json, os, re, shutil, subprocess, sys, tarfile, tempfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---- outputs: what other libraries print is not part of the page
# a tqdm bar: `Loading weights:  41%|####1     | 42/103 [00:00<00:00, 4246.54it/s]` (any description, any bar characters)
TQDM_BAR = re.compile(r'\d{1,3}%\|[^|\n]*\|\s*[\d.]+[kMG]?/[\d.?]+[kMG]?\s*\[')
# what `warnings.warn` prints: `/path/to/file.py:3312: FutureWarning: message`, then the source line, indented
WARNING_LINE = re.compile(r'^(?P<path>\S[^:\n]*\.py):(?P<line>\d+): (?P<cat>\w*Warning): ')
SITE_PACKAGES = re.compile(r'(?:/[^\s/\'"]+)*/(?:site|dist)-packages/')

def _is_bar(segment:str)->bool: return bool(TQDM_BAR.search(segment))

def clean_stream(text:str, root:Path=ROOT)->str:
    "A stderr/stdout text without progress bars and other libraries' warnings; the repository's own warnings keep a relative path."
    out, skip_source = [], False
    for line in re.split(r'(?<=\n)', text):  # not splitlines: tqdm's '\r' updates stay on their line
        if not line: continue
        body = line.rstrip('\n')
        if skip_source and body.startswith((' ', '\t')) and body.strip(): continue  # the source line a warning quotes
        skip_source = False
        parts = [s for s in body.split('\r') if s.strip()]
        if parts and all(_is_bar(s) for s in parts): continue
        if parts and any(_is_bar(s) for s in parts): line = [s for s in parts if not _is_bar(s)][-1] + '\n'
        m = WARNING_LINE.match(line)
        if m:
            mine = not SITE_PACKAGES.search(m['path']) and not _relative(m['path'], root).startswith('/')
            skip_source = True
            if not mine: continue
            line = _relative(line, root)
        out.append(line)
    return ''.join(out)

REPO_FOLDERS = ('sft_nb', 'nbs', 'tools', 'tests', 'bench')  # where the repository's own files live

@functools.lru_cache
def _repo_prefix(root:Path)->re.Pattern:
    "An absolute path up to one of the repository's top folders (`/any/checkout/sft_nb/`): the notebook may have run in another clone."
    tops = [t for t in REPO_FOLDERS if (root/t).is_dir()]
    # not inside a URL (`https://github.com/.../sft_nb/...`) or a relative path: only where an absolute path starts
    return re.compile(r'(?<![\w.~:/-])(?:/[^\s/\'"<>()]+)+?/(?=(?:' + '|'.join(map(re.escape, tops)) + r')/)')

def _relative(text:str, root:Path=ROOT)->str:
    "`text` with absolute paths into site-packages or a checkout of this repository made relative (`transformers/...`, `sft_nb/...`)."
    return _repo_prefix(root).sub('', SITE_PACKAGES.sub('', text))

FACTORY_DEFAULT = {'list': '[]', 'dict': '{}', 'set': 'set()', 'tuple': '()'}

def tidy_signature(text:str)->str:
    "Signatures as one would write them: `dl=None` for `dl:NoneType=None`, `params:list=[]` for a dataclass `<factory>`."
    text = re.sub(r'(\w+):NoneType=None', r'\1=None', text)
    return re.sub(r'(\w+):([\w.]+)=<factory>', lambda m: f"{m[1]}:{m[2]}={FACTORY_DEFAULT.get(m[2], m[2] + '()')}", text)

def _text(v)->str: return ''.join(v) if isinstance(v, list) else v

def tidy_outputs(outputs:list, root:Path=ROOT)->list:
    "A cell's outputs without other libraries' noise and machine paths, with readable signatures; empty streams dropped."
    kept = []
    for o in outputs:
        if o.get('output_type') == 'stream':
            txt = _relative(clean_stream(_text(o.get('text', '')), root), root)
            if not txt.strip(): continue
            if txt != _text(o.get('text', '')): o = {**o, 'text': txt}
        elif 'data' in o:
            data = dict(o['data'])
            for k in ('text/plain', 'text/markdown', 'text/html'):
                if k in data and (new := _relative(tidy_signature(_text(data[k])), root)) != _text(data[k]): data[k] = new
            if data != o['data']: o = {**o, 'data': data}
        kept.append(o)
    return kept

def tidy_notebook(path:Path, root:Path=ROOT)->int:
    "Tidy the outputs of one processed notebook in place; how many outputs changed or went."
    nb = json.loads(path.read_text())
    changed = 0
    for c in nb['cells']:
        if c['cell_type'] != 'code' or not c.get('outputs'): continue
        new = tidy_outputs(c['outputs'], root)
        changed += sum(not any(o is n for n in new) for o in c['outputs'])  # an output left as it was is the same object
        c['outputs'] = new
    if changed: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    return changed

def rename_to_output_files(proc:Path):
    "Name each processed notebook after its `output-file` (00_core.ipynb -> core.ipynb), as Quarto would, so symbol links resolve."
    renames = {}
    for nb in proc.rglob('*.ipynb'):
        m = re.search(r'output-file:\s*([\w.-]+)\.html', nb.read_text())
        if m: nb.write_text(nb.read_text().replace(m.group(0) + '\\n', ''))  # smalldocs names pages after files and ignores output-file
        if m and m.group(1) != nb.stem:
            dest = nb.with_name(m.group(1) + '.ipynb')
            nb.rename(dest); renames[str(nb.relative_to(proc))] = str(dest.relative_to(proc))
    # the sidebar and the notebooks' own links (`[CLI](23_cli.ipynb)`) name the source files: point them at the pages
    for f in [proc/'sidebar.yml', *proc.rglob('*.ipynb')]:
        if not f.exists(): continue
        txt = new_txt = f.read_text()
        for old, new in renames.items():
            name_old, name_new = Path(old).name, Path(new).name
            new_txt = (re.sub(rf'(\]\((?:\.{{1,2}}/)?){re.escape(name_old)}\b', rf'\g<1>{name_new}', new_txt) if f.suffix == '.ipynb'
                       else new_txt.replace(old, new))
        if new_txt != txt: f.write_text(new_txt)
    return renames

def relative_site_links(out:Path, site_url:str):
    "Rewrite absolute links to the published site as relative ones, so the local build links within itself."
    site_url = site_url.rstrip('/') + '/'
    for page in out.rglob('*.html'):
        depth = len(page.relative_to(out).parts) - 1
        txt = page.read_text()
        new = txt.replace(f'href="{site_url}', 'href="' + '../'*depth)
        if new != txt: page.write_text(new)

# ---- offline: every file a page loads comes from the site
WEB_FONTS = re.compile(r'@import\s+url\(\s*["\']?https?://fonts\.(?:googleapis|gstatic)\.com[^)]*\)\s*;?')
CDN_KATEX = re.compile(r'https://cdn\.jsdelivr\.net/npm/katex@([\d.]+)/dist/')

def katex_version()->str:
    "The KaTeX version smalldocs writes into pages that have maths."
    from smalldocs import layout
    return CDN_KATEX.search(layout.KATEX + '/')[1]

def katex_dist(version:str)->Path:
    "KaTeX's `dist/` folder (scripts, stylesheet, fonts) from the npm package, fetched once with `npm pack` and cached."
    cache = Path(os.environ.get('XDG_CACHE_HOME', Path.home()/'.cache'))/'sft_nb'/f'katex-{version}'
    if (cache/'dist'/'katex.min.js').exists(): return cache/'dist'
    npm = shutil.which('npm')
    if npm:
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([npm, 'pack', f'katex@{version}', '--silent', '--pack-destination', tmp],
                               capture_output=True, text=True, timeout=300)
            tgz = next(Path(tmp).glob('katex-*.tgz'), None)
            if r.returncode == 0 and tgz:
                with tarfile.open(tgz) as t:
                    members = [m for m in t.getmembers() if m.name.startswith('package/dist/') and m.isfile() and '..' not in m.name.split('/')]
                    for m in members: m.name = m.name[len('package/'):]
                    shutil.rmtree(cache, ignore_errors=True); cache.mkdir(parents=True)
                    try: t.extractall(cache, members=members, filter='data')
                    except TypeError: t.extractall(cache, members=members)  # Pythons before 3.11.4 have no filter (names checked above)
                return cache/'dist'
            print(f"npm pack katex@{version} failed: {r.stderr.strip()[-300:]}", file=sys.stderr)
    sys.exit(f"KaTeX {version} is needed to render maths offline, and the build takes it from the npm registry with "
             f"`npm pack katex@{version}`: install Node.js's npm (Debian: apt-get install npm)")

def page_offset(page:Path, out:Path)->str:
    "The relative path from a page to the site's root ('' or '../')."
    return '../' * (len(page.relative_to(out).parts) - 1)

def make_offline(out:Path)->dict:
    "No request leaves the site: web-font imports go (styles.css names system fonts); KaTeX is copied into site_libs/katex."
    done = {'stylesheets without web fonts': 0, 'pages with local KaTeX': 0}
    for css in out.rglob('*.css'):
        txt = css.read_text()
        new = WEB_FONTS.sub('', txt)
        if new != txt: css.write_text(new); done['stylesheets without web fonts'] += 1
    pages = [(p, p.read_text()) for p in out.rglob('*.html')]
    if any(CDN_KATEX.search(t) for _, t in pages):
        dest = out/'site_libs'/'katex'
        shutil.rmtree(dest, ignore_errors=True)
        # what the pages load: the script, its auto-render, the stylesheet and the fonts it names
        shutil.copytree(katex_dist(katex_version()), dest, ignore=lambda d, names: [
            n for n in names if Path(d, n).is_file() and not (n.endswith(('.min.js', '.min.css')) or Path(d).name == 'fonts')])
    for page, txt in pages:
        new = CDN_KATEX.sub(page_offset(page, out) + 'site_libs/katex/', txt)
        if new != txt: page.write_text(new); done['pages with local KaTeX'] += 1
    return done

# ---- links to anchors that do not exist
HREF = re.compile(r'<a\b(?P<pre>[^>]*?)\bhref="(?P<href>[^"#:]*\.html)#(?P<frag>[^"]+)"(?P<post>[^>]*)>(?P<body>.*?)</a>', re.S)
IDS = re.compile(r'\bid\s*=\s*"([^"]+)"')

def fix_anchors(out:Path)->list[str]:
    "Point links to a missing `#a.b` at `#a` when that exists (a method without its own doc, say), else drop the link."
    ids, fixes = {}, []
    def ids_of(p:Path):
        if p not in ids: ids[p] = set(map(html.unescape, IDS.findall(p.read_text()))) if p.exists() else None
        return ids[p]
    for page in sorted(out.rglob('*.html')):
        txt = page.read_text()
        def fix(m):
            have = ids_of((page.parent/html.unescape(m['href'])).resolve())
            frag = html.unescape(m['frag'])
            if have is None or frag in have: return m[0]
            parts = frag.split('.')
            while len(parts) > 1:
                parts.pop()
                if '.'.join(parts) in have:
                    fixes.append(f"{page.relative_to(out)}: {m['href']}#{frag} -> #{'.'.join(parts)}")
                    return f'<a{m["pre"]}href="{m["href"]}#{".".join(parts)}"{m["post"]}>{m["body"]}</a>'
            fixes.append(f"{page.relative_to(out)}: link to {m['href']}#{frag} removed (no such anchor)")
            return m['body']
        new = HREF.sub(fix, txt)
        if new != txt: page.write_text(new)
    return fixes

# ---- README: plain Markdown, as a repository host shows it
class _Tables(HTMLParser):
    "The rows of the HTML tables in a fragment, and the text outside them."
    def __init__(self):
        super().__init__()
        self.tables, self.rows, self.cell, self.text = [], None, None, []
    def handle_starttag(self, tag, attrs):
        if tag == 'table': self.rows = []
        elif tag == 'tr' and self.rows is not None: self.rows.append([])
        elif tag in ('td', 'th') and self.rows is not None: self.cell = []
    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self.cell is not None and self.rows:
            self.rows[-1].append(' '.join(''.join(self.cell).split())); self.cell = None
        elif tag == 'table' and self.rows is not None: self.tables.append(self.rows); self.rows = None
    def handle_data(self, data):
        if self.cell is not None: self.cell.append(data)
        elif self.rows is None and data.strip(): self.text.append(data.strip())

def markdown_table(rows:list[list[str]])->str:
    "A Markdown pipe table; the first row is the header."
    rows = [r for r in rows if r]
    if not rows: return ''
    width = max(map(len, rows))
    rows = [[c.replace('|', '\\|') for c in r] + [''] * (width - len(r)) for r in rows]
    return '\n'.join(['| ' + ' | '.join(rows[0]) + ' |', '|' + '---|' * width] + ['| ' + ' | '.join(r) + ' |' for r in rows[1:]])

def html_to_markdown(fragment:str)->str:
    "An output's HTML (a progress line and its table of metrics) as a line of text and Markdown tables."
    p = _Tables(); p.feed(fragment); p.close()
    return '\n\n'.join(([' '.join(p.text)] if p.text else []) + [markdown_table(t) for t in p.tables])

RAW_HTML_BLOCK = re.compile(r'^<(?:div|table|progress|style)\b[^\n]*(?:\n(?!\n)[^\n]*)*', re.M)

def plain_markdown(md:str)->str:
    "Raw HTML output blocks (progress bars, tables) replaced by text and Markdown tables, outside code fences."
    parts = re.split(r'(^```.*?^```[ \t]*$)', md, flags=re.M | re.S)
    return ''.join(p if p.startswith('```') else RAW_HTML_BLOCK.sub(lambda m: html_to_markdown(m[0]), p) for p in parts)

def readme_links(md:str, renames:dict)->str:
    "Links between pages (`tutorials/sentiment.llms.md`, `cli.llms.md`) as links to the notebooks in the repository."
    source = {Path(new).with_suffix('').as_posix(): Path(old).as_posix() for old, new in renames.items()}
    def nb(m): return f"]({'nbs/' + source.get(m[1], m[1] + '.ipynb')}{m[2] or ''})"
    return re.sub(r'\]\(((?!https?:)[\w/.-]+?)\.llms\.md(#[^)\s]*)?\)', nb, md)

def write_readme(out:Path, renames:dict|None=None):
    "README.md is the markdown rendering of the home page (nbs/index.ipynb)."
    md = readme_links((out/'index.llms.md').read_text(), renames or {})
    md = re.sub(r'\n<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->\n', '\n', md)
    md = plain_markdown(md)
    (ROOT/'README.md').write_text('<!-- Generated from nbs/index.ipynb by tools/build_docs.py: edit the notebook, not this file. -->\n\n' + md)
    # the home page's figures (saved cell outputs) go next to the README, so that its image links work on a repository host
    shutil.rmtree(ROOT/'index_files', ignore_errors=True)
    if (out/'index_files').exists(): shutil.copytree(out/'index_files', ROOT/'index_files')

def main(readme:bool=True):
    os.chdir(ROOT)
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    from nbdev.serve import proc_nbs
    cfg = get_config()
    refresh_quarto_yml()
    nbdev_sidebar()
    shutil.rmtree(ROOT/'_proc', ignore_errors=True)
    # a relative path: nbdev skips any file with a part starting with '.', and given absolute paths it then drops
    # _quarto.yml whenever the clone sits under a hidden folder (~/.cache/..., common on CI runners)
    proc_nbs(path=os.path.relpath(cfg.nbs_path, ROOT), n_workers=1)
    proc = ROOT/'_proc'
    for name in ('_quarto.yml', 'sidebar.yml', 'nbdev.yml', 'styles.css', 'favicon.svg'):
        if (cfg.nbs_path/name).exists() and not (proc/name).exists(): shutil.copy2(cfg.nbs_path/name, proc/name)
    renames = rename_to_output_files(proc)
    tidied = {str(nb.relative_to(proc)): n for nb in sorted(proc.rglob('*.ipynb')) if (n := tidy_notebook(nb))}
    print(f"docs: outputs tidied (other libraries' noise, machine paths, signatures): {tidied}")
    out = ROOT/cfg.doc_path.name
    smalldocs = Path(sys.executable).with_name('smalldocs')
    subprocess.run([str(smalldocs), 'render', '-q', str(proc)], check=True)
    built = proc/cfg.doc_path.name
    if built.resolve() != out.resolve():
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(str(built), str(out))
    relative_site_links(out, cfg.doc_host.rstrip('/') + cfg.doc_baseurl)
    print(f"docs: offline: {make_offline(out)}")
    for f in fix_anchors(out): print(f"docs: anchor fixed: {f}")
    if not (out/'index.html').exists(): sys.exit("docs build failed: no index.html")
    if readme: write_readme(out, renames)
    pages = sorted(str(p.relative_to(out)) for p in out.rglob('*.html'))
    print(f"docs: {len(pages)} pages in {out.relative_to(ROOT)}/: {', '.join(pages)}")

if __name__ == '__main__': main(readme='--no-readme' not in sys.argv)
