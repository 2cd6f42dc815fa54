"""Plain-PyTorch baseline for bench/embed: what transformers does to embed a corpus.

Qwen3-Embedding (or BERT) with random weights of the real shapes, the token ids embtune's
tokenizer produced (read from a JSON file, so both sides see the same tokens), batches of
`batch_size` sorted by length (longest first, as sentence-transformers), padded (Qwen3 left,
BERT right), eager attention, float32; last-token (Qwen3) or mean (BERT) pooling, L2 normalised.
Prints one JSON line: real tokens, padded tokens, seconds, peak RSS.
Run by bench/embed.ts with Debian's /usr/bin/python3 (python3-torch).
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F

from qwen3_reference import rms_norm, rotate_half

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
ids = json.load(open(args["ids"]))
family, batch_size = args["family"], args["batch_size"]


def rand(*shape):
    return torch.randn(*shape) * 0.02


if family == "qwen3":
    V, H, NL, NQ, NKV, D, I = 151669, 1024, 28, 16, 8, 128, 3072
    EPS, THETA, PAD = 1e-6, 1e6, 151643
    emb = rand(V, H)
    layers = [dict(q=rand(NQ * D, H), k=rand(NKV * D, H), v=rand(NKV * D, H), o=rand(H, NQ * D), qn=torch.ones(D), kn=torch.ones(D),
                   inn=torch.ones(H), post=torch.ones(H), gate=rand(I, H), up=rand(I, H), down=rand(H, I)) for _ in range(NL)]
    norm = torch.ones(H)

    def rms(x, w):
        return rms_norm(x, w, EPS)

    def forward(input_ids, mask):
        B, L = input_ids.shape
        inv_freq = 1.0 / (THETA ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        freqs = torch.arange(L).float()[:, None] @ inv_freq[None, :]
        e = torch.cat((freqs, freqs), dim=-1)
        cos, sin = e.cos(), e.sin()
        minv = torch.finfo(torch.float32).min
        causal = torch.full((L, L), minv).triu(1)[None, None].expand(B, 1, L, L).clone()
        causal = causal.masked_fill(mask[:, None, None, :] == 0, minv)
        h = F.embedding(input_ids, emb)
        for w in layers:
            x = rms(h, w["inn"])
            q = rms(F.linear(x, w["q"]).view(B, L, NQ, D), w["qn"]).transpose(1, 2)
            k = rms(F.linear(x, w["k"]).view(B, L, NKV, D), w["kn"]).transpose(1, 2)
            v = F.linear(x, w["v"]).view(B, L, NKV, D).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k = k[:, :, None].expand(B, NKV, NQ // NKV, L, D).reshape(B, NQ, L, D)
            v = v[:, :, None].expand(B, NKV, NQ // NKV, L, D).reshape(B, NQ, L, D)
            p = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * D ** -0.5 + causal, dim=-1, dtype=torch.float32)
            h = h + F.linear(torch.matmul(p, v).transpose(1, 2).reshape(B, L, NQ * D), w["o"])
            x = rms(h, w["post"])
            h = h + F.linear(F.silu(F.linear(x, w["gate"])) * F.linear(x, w["up"]), w["down"])
        h = rms(h, norm)
        return F.normalize(h[:, -1], p=2, dim=1)  # left padding: the last position is real
    pad_left = True
else:
    V, H, NL, NH, I, P = 21128, 512, 4, 8, 2048, 512
    PAD = 0
    word, pos, typ = rand(V, H), rand(P, H), rand(2, H)
    ln = lambda: (torch.ones(H), torch.zeros(H))
    emb_ln = ln()
    layers = [dict(q=rand(H, H), qb=torch.zeros(H), k=rand(H, H), kb=torch.zeros(H), v=rand(H, H), vb=torch.zeros(H), o=rand(H, H), ob=torch.zeros(H),
                   ln1=ln(), i=rand(I, H), ib=torch.zeros(I), out=rand(H, I), outb=torch.zeros(H), ln2=ln()) for _ in range(NL)]

    def forward(input_ids, mask):
        B, L = input_ids.shape
        h = F.embedding(input_ids, word) + F.embedding(torch.zeros_like(input_ids), typ)
        h = F.layer_norm(h + F.embedding(torch.arange(L)[None], pos), (H,), *emb_ln, 1e-12)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        d = H // NH
        for w in layers:
            heads = lambda x: x.view(B, L, NH, d).permute(0, 2, 1, 3)
            q, k, v = heads(F.linear(h, w["q"], w["qb"])), heads(F.linear(h, w["k"], w["kb"])), heads(F.linear(h, w["v"], w["vb"]))
            ctx = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + ext, dim=-1).matmul(v).permute(0, 2, 1, 3).reshape(B, L, H)
            h = F.layer_norm(F.linear(ctx, w["o"], w["ob"]) + h, (H,), *w["ln1"], 1e-12)
            h = F.layer_norm(F.linear(F.gelu(F.linear(h, w["i"], w["ib"])), w["out"], w["outb"]) + h, (H,), *w["ln2"], 1e-12)
        m = mask[:, :, None].float()
        return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)
    pad_left = False

order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
real = padded = 0
start = time.perf_counter()
with torch.no_grad():
    for s in range(0, len(order), batch_size):
        rows = [ids[i] for i in order[s:s + batch_size]]
        L = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), L), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), L), dtype=torch.long)
        for j, r in enumerate(rows):
            sl = slice(L - len(r), L) if pad_left else slice(0, len(r))
            input_ids[j, sl] = torch.tensor(r)
            mask[j, sl] = 1
        forward(input_ids, mask)
        real += sum(len(r) for r in rows)
        padded += len(rows) * L
seconds = time.perf_counter() - start
print(json.dumps({"real_tokens": real, "padded_tokens": padded, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}))
