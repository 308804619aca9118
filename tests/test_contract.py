"The Learner contract (`sft_nb.core.LEARNER_CONTRACT`, `CALLBACK_WRITES`) is kept by every callback this package ships."
import importlib, inspect, pkgutil, warnings
import pytest, torch
import sft_nb
from sft_nb.core import Callback, NonFiniteLossError, audit_contract

def shipped_callbacks()->set[type]:
    "Every public `Callback` subclass defined in a module of sft_nb (subpackages included: `sft_nb.callbacks.*`)."
    out = set()
    for m in pkgutil.walk_packages(sft_nb.__path__, 'sft_nb.'):
        if m.name.rsplit('.', 1)[-1].startswith('_'): continue
        mod = importlib.import_module(m.name)
        out |= {c for _, c in inspect.getmembers(mod, inspect.isclass)
                if issubclass(c, Callback) and c is not Callback and c.__module__ == mod.__name__ and not c.__name__.startswith('_')}
    return out

SHIPPED = shipped_callbacks()

def test_callbacks_share_one_home():
    "Every shipped callback lives in the `sft_nb.callbacks` package, and `sft_nb.callbacks.all` exports each one."
    import sft_nb.callbacks.all as cb_all
    outside = sorted(f'{c.__module__}.{c.__name__}' for c in SHIPPED if not c.__module__.startswith('sft_nb.callbacks.'))
    assert not outside, f"callbacks outside sft_nb.callbacks: {outside}"
    missing = sorted(c.__name__ for c in SHIPPED if getattr(cb_all, c.__name__, None) is not c or c.__name__ not in cb_all.__all__)
    assert not missing, f"not exported by sft_nb.callbacks.all: {test_missing}"

class Run:
    "Fits under `audit_contract`, collecting the callback classes that ran and the accesses outside the contract."
    def __init__(self): self.ran, self.found = set(), []
    def __call__(self, learn, f):
        call = Callback.__call__
        def spy(cb, event): self.ran.update(type(cb).__mro__); return call(cb, event)
        Callback.__call__ = spy
        with audit_contract(learn) as found:
            try: f(learn)
            finally:
                Callback.__call__ = call
                self.found += [x for x in found if x[0] in {c.__name__ for c in SHIPPED}]

@pytest.fixture(scope='module')
def audited(tmp_path_factory):
    torch.set_num_threads(1)
    from sft_nb.learner import toy_learner, Learner
    from sft_nb.callbacks.core import EarlyStopping, SaveBestModel, GradualUnfreezing, LRFinder
    from sft_nb.callbacks.progress import ProgressCallback, MetricsLogger, TensorBoardCallback, LivePlotCallback
    from sft_nb.callbacks.augment import TokenDropout, TokenSwap
    from sft_nb.callbacks.evaluation import GenerationEval, QAEval
    from sft_nb.assets import tiny_model, toy_sentiment_dls
    from sft_nb.batches import dataloaders
    d, run = tmp_path_factory.mktemp('contract'), Run()
    def records_cbs(): return [ProgressCallback(html=False, bar=False, log_seconds=0.), MetricsLogger(every_n_steps=1),
                               LivePlotCallback(live=False, save_to=d/'plot.png'), EarlyStopping(patience=5, verbose=False),
                               SaveBestModel(verbose=False), GradualUnfreezing()]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TensorBoardCallback warns when tensorboard is not installed
        tb = TensorBoardCallback()
    # a run that stops half-way, then resumes from its checkpoint (the Checkpointer restores the records)
    class Stop(Callback):
        def after_step(self):
            if self.learn.step == 6: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(toy_learner(records_cbs() + [tb, Stop()], valid_losses=[.9, .5, .7, .6], output_dir=d/'run', checkpoint_every=2, eval_every=3),
            lambda l: l.fit(3))
    run(toy_learner(records_cbs(), valid_losses=[.9, .5, .7, .6], output_dir=d/'run', checkpoint_every=2, eval_every=3),
        lambda l: l.fit(3, resume=True))
    run(toy_learner(), lambda l: l.lr_find(num_it=20, show_plot=False))
    run(toy_learner(), lambda l: l.fine_tune(1, freeze_epochs=1))
    with pytest.raises(NonFiniteLossError): run(toy_learner(lr=1e4), lambda l: l.fit(3))  # diverges: TerminateOnNaN stops it
    model, tok = tiny_model('bert', 'classification')
    run(Learner(model, toy_sentiment_dls(tok, n_train=16), lr=1e-3, tokenizer=tok, precision='no', augment=lambda b: b,
                cbs=[TokenDropout(p=.1), TokenSwap(p=.1), ProgressCallback(html=False, bar=False)]), lambda l: l.fit(1))
    lm, ltok = tiny_model('llama', 'causal')
    rows = [{'prompt': 'hello', 'completion': 'good morning'}, {'prompt': 'is it good', 'completion': 'yes'}]
    ge = GenerationEval([(r['prompt'], r['completion']) for r in rows], max_new_tokens=2, show=False)
    ge_steps = GenerationEval([('hello', 'good morning')], metrics=['exact_match'], unit='step', every=2, max_new_tokens=2, show=False)
    dls = dataloaders({'train': rows * 4, 'validation': rows}, ltok, 'causal', batch_size=4, cache=False)
    run(Learner(lm, dls, lr=1e-3, tokenizer=ltok, precision='no', progress=False, cbs=[ge, ge_steps]), lambda l: l.fit(1))
    qa = [{'question': 'what is the capital of lomo ?', 'context': 'the capital of lomo is bari . we liked the film .',
           'answers': {'text': ['bari'], 'answer_start': [23]}}]
    qm, qtok = tiny_model('bert', 'qa')
    qdls = dataloaders({'train': qa * 8, 'validation': qa}, qtok, 'qa', batch_size=4, max_length=32, stride=8, cache=False, verbose=False)
    run(Learner(qm, qdls, lr=1e-3, tokenizer=qtok, precision='no', progress=False, cbs=[QAEval(qa, max_length=32, stride=8, show=False)]),
        lambda l: l.fit(1))
    return run

def test_every_shipped_callback_ran(audited):
    test_missing = {c.__name__ for c in SHIPPED} - {c.__name__ for c in audited.ran}
    assert not test_missing, f"shipped callbacks this test does not run yet: {sorted(test_missing)}"

def test_callbacks_keep_the_contract(audited):
    assert not audited.found, "accesses outside sft_nb.core.LEARNER_CONTRACT / CALLBACK_WRITES:\n" + '\n'.join(map(str, sorted(set(audited.found))))

def test_the_audit_catches_a_breach():
    from sft_nb.learner import toy_learner
    class Peek(Callback):
        def after_batch(self): self.learn.window_items; self.learn.history = []
    learn = toy_learner([Peek()])
    with audit_contract(learn) as found: learn.fit(1)
    assert ('Peek', 'read', 'window_items') in found and ('Peek', 'write', 'history') in found
