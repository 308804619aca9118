"""Open every page of the built docs site in headless Chromium and fail on what a reader would see broken.

    python tools/check_site.py [--build | --no-build] [--site _docs] [--screenshot PAGE=FILE.png] [--no-install]

Builds _docs/ first when it does not exist (`--build`: always; `--no-build`: never, use what is there), serves it on
127.0.0.1 (a free port) and loads each .html page in Debian's `chromium` through `chromedriver` (selenium).
Problems, listed per page:
- console errors (level SEVERE), which include resources that failed to load;
- requests the server answered with an error (404 for a missing page, image, script or stylesheet);
- images that did not load (`naturalWidth == 0`);
- tables that do not render: a <table> with no cells or no height on screen, a markdown table left as `|---|` text,
  or an HTML table printed as text (`<table` in the visible text);
- internal links (same site) whose page is missing (404);
- maths left as TeX (`\\[...\\]` or `\\(...\\)` in the text outside code): KaTeX did not load or did not render it.
Warnings, printed but not failing (`--strict` makes them fail; CI runs it strict):
- internal links whose `#fragment` names no id on the target page;
- any request to another host (every request the page makes is read from Chromium's network log). None is ever
  fetched: Chromium resolves no host but 127.0.0.1, so the check runs with the network off, online or not;
- content that overflows at 1280 px: an element of the page's body (main.content) that reaches past the body's
  edges, or that is wider than a box that clips it (`overflow: hidden`), unless it sits in a block that scrolls
  (`overflow-x: auto` or `scroll`): content cut off or pushed under the table of contents;
- noise in the outputs shown (`.cell-output`): `Warning` (a Python warning, such as a library's FutureWarning), a
  path of the machine that ran the notebook (`/work/`, `/root/`, `/home/`, `.venv/`, `site-packages/`), or a tqdm
  progress bar (`Loading weights: 100%|####| 41/41 [...]`); tools/build_docs.py removes the libraries' ones;
- the browser's automatic /favicon.ico request when the site has none.
Exit status 1 with the list of problems, 0 when there are none. `--screenshot tutorials/sentiment.html=/tmp/s.png` also saves a
full-page screenshot of that page.

What it needs (`chromium`, `chromium-driver`, the `selenium` package) is installed on first use when missing:
apt-get as root, pip into this interpreter's environment (`--no-install` turns that off). Nothing downloads a
browser at run time: selenium is pointed at the Debian binaries and its driver manager is kept offline."""
import argparse, functools, http.server, json, os, re, shutil, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urljoin, urlsplit, unquote
from urllib.request import urlopen
from urllib.error import HTTPError

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = ('chromium', 'chromium-browser')
DRIVER = ('chromedriver',)
PAGE_TIMEOUT = 60

def _which(names): return next((p for n in names if (p := shutil.which(n) or (f'/usr/bin/{n}' if Path(f'/usr/bin/{n}').exists() else None))), None)

def ensure_tools(install:bool=True)->tuple[str, str]:
    "Paths of chromium and chromedriver, installing them (and selenium) first when missing."
    if not (_which(CHROMIUM) and _which(DRIVER)):
        if not install: sys.exit("chromium / chromedriver not found: apt-get install chromium chromium-driver")
        if os.geteuid() != 0 or not shutil.which('apt-get'):
            sys.exit("chromium / chromedriver not found, and this is not root on Debian: "
                     "sudo apt-get install -y chromium chromium-driver")
        print("installing chromium and chromium-driver (apt-get)", flush=True)
        env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        subprocess.run(['apt-get', 'update', '-qq'], check=True, env=env)
        subprocess.run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'chromium', 'chromium-driver'],
                       check=True, env=env)
    try: import selenium  # noqa: F401
    except ImportError:
        if not install: sys.exit("selenium not installed: pip install 'selenium>=4.10'")
        print("installing selenium (pip)", flush=True)
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', 'selenium>=4.10'], check=True)
    return _which(CHROMIUM), _which(DRIVER)

class _Handler(http.server.SimpleHTTPRequestHandler):
    errors:list = []  # (status, path) of every error answer, shared with the checker
    def log_message(self, *args): pass
    def send_error(self, code, message=None, explain=None):
        if code >= 400: self.errors.append((code, self.path))
        super().send_error(code, message, explain)

def serve(site:Path)->tuple[http.server.ThreadingHTTPServer, str]:
    "Serve `site` on 127.0.0.1 and a free port, in a thread; the server and its base URL."
    handler = functools.partial(_Handler, directory=str(site))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}/'

def browser(chromium:str, driver:str):
    "A headless Chromium session that keeps the browser console."
    os.environ['SE_OFFLINE'] = 'true'  # selenium's driver manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,900',
              '--disable-extensions', '--no-first-run', '--disable-background-networking',
              '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'):  # the site alone, online or not
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})  # performance: the network log
    d = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    d.set_page_load_timeout(PAGE_TIMEOUT)
    return d

# Runs in the page: waits for every image (lazy ones scrolled into view), then reports images, tables, links.
PAGE_JS = r"""
const done = arguments[arguments.length - 1];
(async () => {
  const imgs = [...document.images];
  for (const img of imgs) { if (img.loading === 'lazy') img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); setTimeout(r, 15000); })));
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const hiddenByPage = el => el.closest('details:not([open]), [hidden], .tab-pane:not(.active)') !== null;
  const images = imgs.map(img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
                                    hidden: !visible(img) && hiddenByPage(img)}));
  const tables = [...document.querySelectorAll('table')].map(t => ({
      cells: t.querySelectorAll('td, th').length, height: t.getBoundingClientRect().height,
      hidden: hiddenByPage(t), head: (t.innerText || '').slice(0, 60)}));
  const rawMd = [...document.querySelectorAll('p, li')].map(p => p.innerText)
      .filter(s => /^\s*\|.*\|\s*$/m.test(s) && /\|\s*:?-{3,}/.test(s)).map(s => s.slice(0, 80));
  const shown = [...document.querySelectorAll('.cell-output-display')].map(o => {  // outputs, not the code shown
      const c = o.cloneNode(true); c.querySelectorAll('pre, code').forEach(e => e.remove()); return c.textContent; });
  const rawHtml = shown.flatMap(t => t.match(/<(table|div|img|style)\b[^>]{0,40}/g) || []).slice(0, 5);
  const outputs = document.querySelectorAll('.cell-output').length;
  const prose = (() => { const c = (document.querySelector('main.content') || document.body).cloneNode(true);
      c.querySelectorAll('pre, code, script, style, .katex').forEach(e => e.remove()); return c.textContent; })();
  const rawMath = (prose.match(/\\[\[(][^\n]{0,60}/g) || []).slice(0, 3);  // TeX that KaTeX did not render
  const maths = document.querySelectorAll('.katex').length;
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  // content wider than the body or than a box that clips it, outside any block that scrolls (outermost elements only)
  const main = document.querySelector('main.content') || document.body, mr = main.getBoundingClientRect();
  const overflow = [];
  const describe = (el, r, w) => `<${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ?
      ' class="' + el.className.trim().split(/\s+/).slice(0, 2).join(' ') + '"' : ''}> ${Math.round(r.width)} px wide in ` +
      `${Math.round(w)} px: ${JSON.stringify((el.innerText || el.textContent || '').trim().slice(0, 50))}`;
  const walk = (box, br) => {
    for (const el of box.children) {
      const st = getComputedStyle(el);
      if (st.display === 'none' || st.position === 'fixed' || st.position === 'absolute' || hiddenByPage(el)) continue;
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) continue;
      if (r.right > br.right + 1 || r.left < br.left - 1) { overflow.push(describe(el, r, br.width)); continue; }
      if (['auto', 'scroll'].includes(st.overflowX)) continue;  // what is inside scrolls in its own block
      if (['hidden', 'clip'].includes(st.overflowX) && el.scrollWidth > el.clientWidth + 1 && !(el.closest('.search-result'))) {
        overflow.push(describe(el, {width: el.scrollWidth}, el.clientWidth) + ' (cut off)'); continue; }
      walk(el, ['hidden', 'clip'].includes(st.overflowX) ? r : br);
    }
  };
  walk(main, mr);
  // blocks a reader scrolls sideways (the outermost of nested ones): allowed, but the fewer the better
  const sc = [...main.querySelectorAll('*')].filter(el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX)
      && el.scrollWidth > el.clientWidth + 1 && !hiddenByPage(el));
  const scrolling = sc.filter(el => !sc.some(o => o !== el && o.contains(el))).length;
  const outText = [...document.querySelectorAll('.cell-output')].map(o => o.textContent).join('\n');
  const noise = [...new Set([...(outText.match(/[^\n]{0,40}\b\w*Warning\b[^\n]{0,40}/g) || []).map(s => 'Warning: ' + s.trim()),
      ...(outText.match(/[^\s'"(]*(?:\/(?:work|root|home)\/|\.venv\/|site-packages\/)[^\s'")]*/g) || []).map(s => 'path: ' + s),
      ...(outText.match(/[^\n]{0,30}\d{1,3}%\|[^|\n]*\|\s*\S+\/\S+\s*\[[^\n]{0,20}/g) || []).map(s => 'progress bar: ' + s.trim())])].slice(0, 8);
  done({images, tables, rawMd, rawHtml, links, outputs, overflow: overflow.slice(0, 12), nOverflow: overflow.length, noise,
        scrolling, width: Math.round(mr.width), rawMath, maths,
        title: document.title});
})();
"""

def _html_ids(html:str)->set:
    return set(re.findall(r'''\b(?:id|name)\s*=\s*["']([^"']+)["']''', html))

def check_links(links:list[str], base:str, page_url:str, cache:dict)->list[str]:
    "Problems of the same-site links of one page: missing targets, fragments that name nothing."
    problems = []
    for href in dict.fromkeys(links):
        if not href.startswith(base): continue
        parts = urlsplit(href)
        target = href.split('#', 1)[0]
        if target not in cache:
            try:
                with urlopen(target, timeout=30) as r: cache[target] = (r.status, r.read().decode('utf-8', 'replace'))
            except HTTPError as e: cache[target] = (e.code, '')
        status, body = cache[target]
        rel = target[len(base):] or '/'
        if status >= 400: problems.append(f"link to {rel} answers {status}"); continue
        frag = unquote(parts.fragment)
        if frag and target.endswith(('.html', '/')) and frag not in _html_ids(body):
            problems.append(f"warning: link to {rel}#{frag}: no such anchor on that page")
    return problems

LOCAL_SCHEMES = ('data:', 'blob:', 'about:', 'chrome:', 'chrome-extension:', 'javascript:')

def other_host(url:str, base:str)->str|None:
    "The warning for a request that leaves the site, or None for one to the site (or one that needs no network)."
    if url.startswith(base) or url.startswith(LOCAL_SCHEMES) or not url: return None
    return f"warning: request to another host (never fetched here): {url[:120]}"

def requests_made(perf_log:list)->list[str]:
    "The URLs of every request in Chromium's performance (network) log entries."
    urls = []
    for e in perf_log:
        try: msg = json.loads(e['message'])['message']
        except (KeyError, ValueError, TypeError): continue
        if msg.get('method') == 'Network.requestWillBeSent': urls.append(msg['params']['request']['url'])
    return urls

def _console_problem(msg:str, base:str)->str:
    "A console error as a problem, or as a warning when it is about another host or the automatic favicon request."
    url = msg.split(' ', 1)[0]
    if url.startswith(('http://', 'https://')) and not url.startswith(base): return other_host(url, base)
    if url == urljoin(base, 'favicon.ico'): return "warning: the site has no favicon.ico"
    return f"console error: {msg[:300]}"

def check_page(d, url:str, base:str, link_cache:dict)->tuple[list[str], dict]:
    "Load one page; what is wrong with it (warnings start with 'warning:'), and what it shows."
    problems = []
    d.get_log('browser'); d.get_log('performance')  # drop what an earlier page left
    start = len(_Handler.errors)
    try: d.get(url)
    except Exception as e: return [f"did not load: {type(e).__name__}: {str(e).splitlines()[0]}"], {}
    d.set_script_timeout(PAGE_TIMEOUT)
    info = d.execute_async_script(PAGE_JS)
    time.sleep(0.2)  # late console messages
    for e in d.get_log('browser'):
        if e.get('level') == 'SEVERE': problems.append(_console_problem(e.get('message', ''), base))
    problems += [w for u in requests_made(d.get_log('performance')) if (w := other_host(u, base))]
    for code, path in _Handler.errors[start:]:
        if path != '/favicon.ico': problems.append(f"server answered {code} for {path}")
    for im in info['images']:
        if not im['ok'] and not im['hidden']: problems.append(f"image did not load: {im['src'][:120]}")
    for t in info['tables']:
        if t['hidden']: continue
        if t['cells'] == 0: problems.append(f"table without cells ({t['head']!r})")
        elif t['height'] <= 0: problems.append(f"table not rendered (zero height) ({t['head']!r})")
    for s in info['rawMd']: problems.append(f"markdown table shown as text: {s!r}")
    for s in info['rawHtml']: problems.append(f"HTML shown as text: {s!r}")
    for s in info['rawMath']: problems.append(f"maths shown as TeX, not rendered: {s!r}")
    problems += check_links(info['links'], base, url, link_cache)
    problems += [f"warning: overflows at {d.get_window_size()['width']} px: {o}" for o in info['overflow']]
    if info['nOverflow'] > len(info['overflow']): problems.append(f"warning: {info['nOverflow'] - len(info['overflow'])} more overflowing elements")
    problems += [f"warning: output noise: {n[:120]}" for n in info['noise']]
    shows = {'outputs': info['outputs'], 'images': sum(i['ok'] for i in info['images']), 'tables': len(info['tables']),
             **({'formulas': info['maths']} if info['maths'] else {}),
             'blocks that scroll sideways': info['scrolling'], 'px body': info['width']}
    return list(dict.fromkeys(problems)), shows

def screenshot(d, url:str, dest:Path):
    "A full-page PNG of `url`."
    import base64
    d.get(url)
    d.execute_async_script(PAGE_JS)
    m = d.execute_cdp_cmd('Page.getLayoutMetrics', {})
    size = m.get('cssContentSize') or m['contentSize']
    png = d.execute_cdp_cmd('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': True,
        'clip': {'x': 0, 'y': 0, 'width': size['width'], 'height': size['height'], 'scale': 1}})
    dest.write_bytes(base64.b64decode(png['data']))
    print(f"screenshot of {url} ({int(size['width'])}x{int(size['height'])} px) in {dest}")

def build(site:Path):
    print("building the docs (tools/build_docs.py --no-readme)", flush=True)
    subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--no-readme'], check=True, cwd=ROOT)
    if not (site/'index.html').exists(): sys.exit(f"no {site}/index.html after the build")

def main(argv=None)->int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument('--build', action='store_true', help='build the site first, even if it exists')
    g.add_argument('--no-build', action='store_true', help='never build: check the site that is there')
    p.add_argument('--site', default=str(ROOT/'_docs'), help='the built site (default: _docs)')
    p.add_argument('--screenshot', action='append', default=[], metavar='PAGE=FILE', help='save a full-page screenshot')
    p.add_argument('--no-install', action='store_true', help='do not install chromium, chromedriver or selenium')
    p.add_argument('--strict', action='store_true', help='warnings fail too')
    a = p.parse_args(argv)
    site = Path(a.site).resolve()
    t0 = time.perf_counter()
    chromium, driver = ensure_tools(not a.no_install)
    if a.build or (not a.no_build and not (site/'index.html').exists()): build(site)
    if not (site/'index.html').exists(): sys.exit(f"{site} has no index.html: build the docs first (python tools/build_docs.py)")
    pages = sorted(str(q.relative_to(site)) for q in site.rglob('*.html'))
    srv, base = serve(site)
    d = browser(chromium, driver)
    failed, cache, warned = {}, {}, {}
    try:
        for page in pages:
            tp = time.perf_counter()
            found, shows = check_page(d, urljoin(base, page), base, cache)
            bad = [m for m in found if a.strict or not m.startswith('warning:')]
            for m in found:
                if m.startswith('warning:') and not a.strict: warned.setdefault(m, []).append(page)
            what = ', '.join(f"{v} {k}" for k, v in shows.items())
            print(f"{'FAIL' if bad else 'ok  '} {page}: {what} ({time.perf_counter() - tp:.1f} s)", flush=True)
            for m in bad: print(f"     - {m}")
            if bad: failed[page] = bad
        for spec in a.screenshot:
            page, _, dest = spec.partition('=')
            screenshot(d, urljoin(base, page), Path(dest or page.replace('/', '_') + '.png'))
    finally:
        d.quit(); srv.shutdown()
    for m, on in warned.items(): print(f"{m} (on {len(on)} page(s): {', '.join(on[:3])}{', ...' if len(on) > 3 else ''})")
    n = sum(map(len, failed.values()))
    print(f"{len(pages)} pages checked in Chromium in {time.perf_counter() - t0:.0f} s: "
          + (f"{n} problem(s) on {len(failed)} page(s)" if failed else "no problems") + f", {len(warned)} warning(s)")
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
