"""Run notebooks top to bottom, slow cells included, and save them with their outputs (what the docs pages show).

    python tools/refresh_outputs.py nbs/tutorials/sentiment.ipynb [more notebooks ...] [--threads N] [--no-stamp]
    nbdev-clean    # then, as after any notebook edit

Each notebook runs in a fresh child process (cwd = the notebook's folder, as in Jupyter), in execnb's `CaptureShell`
made to look like a Jupyter kernel (`sft_nb.core.in_notebook()` is True), so the library shows what Jupyter shows:
HTML tables, the progress table, live plots (a display updated in place keeps its last state, as in Jupyter),
matplotlib figures as image/png. Every code cell runs, `#| slow` and `#| notest` ones included, except
`#| eval: false` cells, whose saved outputs are kept. Widgets are dropped (their state is not saved, so a page could
only show a placeholder), and carriage-return progress lines keep their last state. On an error the notebook is
left as it was and the failing cell and traceback are printed (exit status 1).

A notebook in which cells ran gets a markdown cell right after its title that says when, on which CPU and with which
precision (`sft_nb.core.default_precision()`) the outputs were produced; a refresh updates that cell.
`--threads N` caps torch at N threads, whatever the notebook asks with `torch.set_num_threads` (on a busy shared
machine one thread is several times faster than threads fighting over the cores); the provenance cell says so.
The default test run (`nbdev-test`, pytest) never writes notebooks, so it does not overwrite these outputs."""
import json, os, platform, re, subprocess, sys, time, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_outputs import directives  # one reading of `#| key: value` cell directives for both tools
STAMP_START = '*Outputs on this page'  # how the provenance cell is found again
QUIET_ENV = dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
                 HF_DATASETS_DISABLE_PROGRESS_BARS='1', HF_HUB_DISABLE_PROGRESS_BARS='1', PYTHONUNBUFFERED='1')

def cpu_model()->str:
    "The CPU's marketing name from /proc/cpuinfo (platform's guess elsewhere)."
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

PRECISION_WORDS = {'no': 'fp32', 'bf16': 'bf16 mixed precision', 'fp16': 'fp16 mixed precision'}

def stamp_text(precision:str, when:datetime.date|None=None, load:list[float]=(), threads:int|None=None)->str:
    "The provenance line written at the top of a refreshed notebook (`load`: 1-minute load averages seen during the run)."
    import torch
    when = when or datetime.date.today()
    return (f"{STAMP_START} were produced on {when.isoformat()} with `python tools/refresh_outputs.py` (slow cells "
            f"included, real models) on {cpu_model()} ({os.cpu_count()} cores), precision `{precision}` "
            f"({PRECISION_WORDS.get(precision, precision)}), torch {torch.__version__}"
            + (f" on at most {threads} thread{'s' if threads > 1 else ''}" if threads else '')
            + (f"; load average {min(load):.1f} to {max(load):.1f} during the run (timings grow with it)" if load else '') + ".*")

def set_stamp(cells:list, text:str):
    "Put `text` in the markdown cell after the title, updating the one an earlier refresh wrote."
    for c in cells:
        if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith(STAMP_START):
            c['source'] = [text]; return
    i = 1 if cells and cells[0]['cell_type'] == 'markdown' and ''.join(cells[0]['source']).lstrip().startswith('# ') else 0
    ids = {c.get('id') for c in cells}
    new_id = next(f'{n:08x}' for n in range(0x5eed0000, 0x5eedffff) if f'{n:08x}' not in ids)
    cells.insert(i, {'cell_type': 'markdown', 'id': new_id, 'metadata': {}, 'source': [text]})

def last_state(text:str)->str:
    "Text as a terminal leaves it: on each line, what follows the last carriage return."
    return '\n'.join(l.rsplit('\r', 1)[-1] for l in text.split('\n'))

def _lines(s:str)->list: return s.splitlines(True)

def mime_bundle(data:dict)->dict:
    "Jupyter's on-disk form of a display's data: text as lines, images as base64."
    from base64 import b64encode
    out = {}
    for k, v in data.items():
        if k.startswith('image/') and isinstance(v, bytes): v = b64encode(v).decode()
        if k.startswith('text/') or k == 'image/svg+xml': v = _lines(v) if isinstance(v, str) else v
        out[k] = v
    return out

WIDGET = 'application/vnd.jupyter.widget-view+json'

class KernelLikeShell:
    "A CaptureShell that passes for a Jupyter kernel, with display updates applied in place."
    def __init__(self):
        from execnb.shell import CaptureShell
        from traitlets.config import Config
        self._patch_display_updates()
        self.shell = CaptureShell(mpl_format='png')
        self.shell.config['IPKernelApp'] = Config()  # what `in_notebook()` (and IPython-aware libraries) look for
        self.by_id, self.late = {}, {}

    def _patch_display_updates(self):
        "Jupyter replaces the output a `display_id` names; IPython's capturing publisher would append a copy."
        from IPython.core.displaypub import CapturingDisplayPublisher
        if getattr(CapturingDisplayPublisher, '_sft_nb_patched', False): return
        orig, runner = CapturingDisplayPublisher.publish, self
        def publish(pub, data, metadata=None, source=None, *, transient=None, update=False):
            did = (transient or {}).get('display_id')
            if update and did:
                hits = [o for o in pub.outputs if (o.get('transient') or {}).get('display_id') == did]
                for o in hits: o.update(data=data, metadata=metadata)
                if not hits: runner.late[did] = (data, metadata)  # shown by an earlier cell
                return
            orig(pub, data, metadata, source, transient=transient, update=update)
        CapturingDisplayPublisher.publish, CapturingDisplayPublisher._sft_nb_patched = publish, True

    def run_cell(self, src:str)->tuple[list, BaseException|None]:
        "Run one cell; its outputs in notebook form, and the exception it raised."
        r = self.shell._run(src, store_history=True)
        outs = []
        if r.stdout: outs.append(dict(output_type='stream', name='stdout', text=_lines(last_state(r.stdout))))
        if r.stderr: outs.append(dict(output_type='stream', name='stderr', text=_lines(last_state(r.stderr))))
        for d in r.display_objects:
            if WIDGET in d.data: continue
            o = dict(output_type='display_data', data=mime_bundle(d.data), metadata=d.metadata or {})
            outs.append(o)
            if d.transient.get('display_id'): self.by_id[d.transient['display_id']] = o
        res = r.result.result
        if res is not None and r.exception is None:
            data, md = self.shell.display_formatter.format(res)
            if WIDGET not in data:
                outs.append(dict(output_type='execute_result', data=mime_bundle(data), metadata=md or {},
                                 execution_count=r.result.execution_count))
        if r.exception is not None:
            import traceback
            e = r.exception
            outs.append(dict(output_type='error', ename=type(e).__name__, evalue=str(e),
                             traceback=traceback.format_exception(type(e), e, e.__traceback__)))
        for did, (data, md) in self.late.items():
            if did in self.by_id: self.by_id[did].update(data=mime_bundle(data), metadata=md or {})
        self.late.clear()
        return outs, r.exception

def _show(path:Path)->str: return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

def cap_threads(n:int):
    "Keep torch at `n` threads at most, also when a cell asks for more."
    import torch
    set_threads = torch.set_num_threads
    set_threads(n)
    torch.set_num_threads = lambda k: set_threads(max(1, min(int(k), n)))

def refresh_one(path:Path, stamp:bool=True, threads:int|None=None)->int:
    "Run every cell of the notebook at `path` and save it with the outputs; 1 on the first failing cell."
    path = path.resolve()
    nb = json.loads(path.read_text())
    os.chdir(path.parent)
    sys.path.insert(0, str(ROOT))
    if threads: cap_threads(threads)
    runner = KernelLikeShell()
    ran, t_all, load = 0, time.perf_counter(), []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        if directives(src).get('eval') == 'false' or not src.strip(): continue
        t0 = time.perf_counter()
        outs, exc = runner.run_cell(src)
        secs = time.perf_counter() - t0
        if hasattr(os, 'getloadavg'): load.append(os.getloadavg()[0])
        print(f"  cell {i:3d} {secs:7.1f} s  {len(outs)} output(s)  {src.strip().splitlines()[0][:70]}", flush=True)
        if exc is not None:
            print(f"\n{_show(path)}: cell {i} failed, notebook left unchanged:\n{src}\n", file=sys.stderr)
            print(''.join(outs[-1]['traceback']), file=sys.stderr)
            return 1
        c['outputs'], c['execution_count'] = outs, outs and ran + 1 or None
        c.get('metadata', {}).pop('execution', None)
        ran += 1
    if stamp and ran:
        from sft_nb.core import default_precision
        set_stamp(nb['cells'], stamp_text(default_precision(), load=load, threads=threads))
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f"{_show(path)}: {ran} cells ran in {time.perf_counter() - t_all:.0f} s, saved with outputs", flush=True)
    return 0

def main(argv:list[str])->int:
    stamp = '--no-stamp' not in argv
    threads = int(argv[argv.index('--threads') + 1]) if '--threads' in argv else None
    if '--one' in argv: return refresh_one(Path(argv[argv.index('--one') + 1]), stamp, threads)
    values = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ('--threads', '--one')}
    nbs = [Path(a) for a in argv if not a.startswith('--') and a not in values]
    if not nbs: print(__doc__); return 2
    missing = [str(p) for p in nbs if not p.is_file()]
    if missing: print(f"no such notebook: {', '.join(missing)}", file=sys.stderr); return 2
    env = {**os.environ, **QUIET_ENV, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    env.pop('MPLBACKEND', None)  # the shell selects the inline backend, as a kernel does
    failed = []
    for nb in nbs:
        print(f"== {nb}", flush=True)
        t0 = time.perf_counter()
        args = ([sys.executable, __file__, '--one', str(nb.resolve())] + ([] if stamp else ['--no-stamp'])
                + (['--threads', str(threads)] if threads else []))
        rc = subprocess.run(args, env=env).returncode
        print(f"   {nb}: {'ok' if rc == 0 else 'FAILED'} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc: failed.append(str(nb))
    if failed: print(f"failed: {', '.join(failed)}", file=sys.stderr)
    else: print("done: now run nbdev-clean")
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
