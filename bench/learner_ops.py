"""Does `Learner.fit` do more work per step than a bare training loop? Operator counts, not times.

MiniLM on the bundled Rotten Tomatoes reviews, bf16 where the CPU has it (else fp32), the same model, optimizer and
batches: one epoch of `Learner.fit` under the torch profiler, then a bare loop (autocast forward, cross-entropy,
backward, clip, fused AdamW step) over the same batches with the Learner's speed callbacks held on around it. Prints
every operator whose calls per step differ. Counts do not depend on the machine's load, so this runs anywhere:

    .venv/bin/python bench/learner_ops.py [--n-train 160]
"""
from __future__ import annotations
import argparse, collections, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import precision_for

def op_counts(prof)->collections.Counter:
    "Calls of each operator and input shape in a finished profile."
    return collections.Counter({(e.key, str(e.input_shapes)): e.count for e in prof.key_averages(group_by_input_shape=True)})

def speed_callbacks():
    "The callback classes that change how a step runs (the bare loop holds the Learner's own on around it)."
    from sft_nb.callbacks.speed import ReuseCpuMemory, MODEL_SPEEDUPS
    return (*MODEL_SPEEDUPS, ReuseCpuMemory)

def main(n_train:int):
    import torch
    from torch.profiler import profile
    from datasets import DatasetDict
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from sft_nb.assets import minilm_path, rotten_tomatoes
    from sft_nb.batches import dataloaders
    from sft_nb.learner import Learner
    from sft_nb.core import Callback
    torch.manual_seed(0)
    precision = precision_for('cpu')
    tok = AutoTokenizer.from_pretrained(minilm_path())
    rt = rotten_tomatoes()
    dsd = DatasetDict(train=rt['train'].select(range(n_train)), validation=rt['validation'].select(range(16)))
    dls = dataloaders(dsd, tok, 'classification', batch_size=32, max_length=64, packing=False, seed=0, verbose=False)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
    learn = Learner(model, dls, lr=1e-5, seed=0, progress=False, precision=precision)
    learn.valid_dl = None
    learn.fit(1)  # warm-up: optimizer state, allocator

    class Profile(Callback):
        "Profile the fit, and keep the batches it trained on (the bare loop takes the very same)."
        order = 100
        def before_fit(self): self.batches, self.p = [], profile(record_shapes=True); self.p.__enter__()
        def before_batch(self): self.batches.append(self.learn.batch)
        def after_fit(self): self.p.__exit__(None, None, None)
    learn.add_cb(prof := Profile())
    learn.fit(1)
    learn.remove_cb(prof)

    batches = prof.batches  # collated already: the bare loop runs the steps alone
    cbs = [cb for cb in learn.cbs if isinstance(cb, speed_callbacks())]  # the Learner's own, whatever its defaults
    for cb in cbs: cb.before_fit()
    m, opt = learn.model, learn.opt
    amp = torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16')
    try:
        with profile(record_shapes=True) as bare:
            m.train()
            for b in batches:
                with amp: out = m(input_ids=b['input_ids'], attention_mask=b['attention_mask'])
                torch.nn.functional.cross_entropy(out.logits.float(), b['labels']).backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    finally:
        for cb in cbs: cb.after_fit()
    a, b, n = op_counts(prof.p), op_counts(bare), len(batches)
    by_op = collections.defaultdict(lambda: [0, 0, set()])
    for k in set(a) | set(b):
        if a[k] != b[k]:
            d = by_op[k[0]]; d[0] += a[k]; d[1] += b[k]; d[2].add(k[1][:40])
    print(f"{n} steps, {precision}; operators whose calls per step differ (Learner / bare loop, a few of their input shapes):")
    for op, (x, y, shapes) in sorted(by_op.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1])):
        print(f"  {op:40s} {x / n:8.1f} {y / n:8.1f}   {', '.join(sorted(shapes)[:4])}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-train', type=int, default=160)
    main(p.parse_args().n_train)
