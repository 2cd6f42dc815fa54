"""PyTorch baseline for bench/engine: the same computations as bench/engine.ts, timed the same way.

Run by bench/engine.ts with Debian's /usr/bin/python3 (python3-torch). Prints one JSON object:
{case name: median seconds}. The Qwen3 layer follows transformers' Qwen3DecoderLayer (eager).
"""
import json
import statistics
import sys
import time

import torch

from qwen3_reference import eager_attention, rms_norm, rotate_half

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)


def timed(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


H, NQ, NKV, D, I = 1024, 16, 8, 128, 3072
B, L = 8, 128
EPS, THETA = 1e-6, 1e6


def make_layer(requires_grad):
    def param(*shape, scale):
        return (torch.randn(*shape) * scale).requires_grad_(requires_grad)

    return {
        "q": param(NQ * D, H, scale=H ** -0.5), "k": param(NKV * D, H, scale=H ** -0.5), "v": param(NKV * D, H, scale=H ** -0.5),
        "o": param(H, NQ * D, scale=(NQ * D) ** -0.5), "qn": param(D, scale=0.1).detach().add(1).requires_grad_(requires_grad),
        "kn": param(D, scale=0.1).detach().add(1).requires_grad_(requires_grad), "in": torch.ones(H, requires_grad=requires_grad),
        "post": torch.ones(H, requires_grad=requires_grad), "gate": param(I, H, scale=H ** -0.5), "up": param(I, H, scale=H ** -0.5),
        "down": param(H, I, scale=I ** -0.5),
    }


inv_freq = 1.0 / (THETA ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
freqs = torch.arange(L).float()[:, None] @ inv_freq[None, :]
emb = torch.cat((freqs, freqs), dim=-1)
cos, sin = emb.cos(), emb.sin()
mask = torch.full((L, L), torch.finfo(torch.float32).min).triu(1)[None, None]


def layer(w, h):
    x = rms_norm(h, w["in"])
    q = rms_norm(torch.nn.functional.linear(x, w["q"]).view(B, L, NQ, D), w["qn"]).transpose(1, 2)
    k = rms_norm(torch.nn.functional.linear(x, w["k"]).view(B, L, NKV, D), w["kn"]).transpose(1, 2)
    v = torch.nn.functional.linear(x, w["v"]).view(B, L, NKV, D).transpose(1, 2)
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    k = k[:, :, None].expand(B, NKV, NQ // NKV, L, D).reshape(B, NQ, L, D)
    v = v[:, :, None].expand(B, NKV, NQ // NKV, L, D).reshape(B, NQ, L, D)
    scores = torch.matmul(q, k.transpose(2, 3)) * D ** -0.5 + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(probs, v).transpose(1, 2).reshape(B, L, NQ * D)
    h = h + torch.nn.functional.linear(out, w["o"])
    x = rms_norm(h, w["post"])
    mlp = torch.nn.functional.linear(torch.nn.functional.silu(torch.nn.functional.linear(x, w["gate"])) * torch.nn.functional.linear(x, w["up"]), w["down"])
    return h + mlp


results = {}
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
results["gemm 1024x1024x1024"] = timed(lambda: torch.matmul(a, b), args["reps"]["gemm_small"])
a, b = torch.randn(2048, 1024), torch.randn(1024, 4096)
results["gemm 2048x1024x4096"] = timed(lambda: torch.matmul(a, b), args["reps"]["gemm_large"])

# Attention as a served reranker batch of qwen3-tiny runs it (24 pairs, 30 new tokens against 92
# keys with the shared prefix, 4 query heads of 16 over 2 KV heads), without gradients.
small_q, small_k, small_v = torch.randn(24, 4, 30, 16), torch.randn(24, 2, 92, 16), torch.randn(24, 2, 92, 16)
small_mask = torch.randn(24, 1, 30, 92)


def small_attention():
    with torch.no_grad():
        eager_attention(small_q, small_k, small_v, small_mask, 0.25)


results["attention 24x4/2x30x92x16 (no grad)"] = timed(small_attention, args["reps"]["attention"])

hidden = torch.randn(B, L, H)
frozen = make_layer(False)


def forward():
    with torch.no_grad():
        layer(frozen, hidden)


results["qwen3 layer forward"] = timed(forward, args["reps"]["layer"])
trainable = make_layer(True)


def forward_backward():
    for p in trainable.values():
        p.grad = None
    layer(trainable, hidden).sum().backward()


results["qwen3 layer forward+backward"] = timed(forward_backward, args["reps"]["layer"])
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))
