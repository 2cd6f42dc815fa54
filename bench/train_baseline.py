"""Plain-PyTorch baseline for bench/train: one LoRA + InfoNCE training step the way transformers
(4.51, eager attention) + PEFT (LoRA) + ms-swift (embedding task) compute it.

- Qwen3 decoder (REFERENCE §6.2) with every Linear wrapped as PEFT's lora.Linear:
  base(x) + lora_B(lora_A(dropout(x))) * scaling (REFERENCE §7), base weights frozen.
- Optional gradient checkpointing per decoder layer as transformers' `gradient_checkpointing_enable()`
  does it on torch 1.13: `torch.utils.checkpoint.checkpoint(layer, …, use_reentrant=True)` (HF's default
  kwargs), with the embedding output made to require grad (`enable_input_require_grads`, which PEFT/ms-swift
  call; without it a reentrant checkpoint would pass no gradient to the adapters).
- Pooling as ms-swift 3.8 (REFERENCE §3.2): last position when every row ends with a real token,
  else position sum(mask) − 1; L2-normalised. InfoNCE as §3.3 (in-batch, fake-negative mask
  on raw cosine against the stop-gradient positive plus the margin, then / τ, cross-entropy).
- clip_grad_norm_ and torch.optim.AdamW, as the HF Trainer runs them.

Weights: drawn from torch.manual_seed(seed) in the order bench/train.ts draws them (embed_tokens,
then per layer q, k, v, o, gate, up, down as randn·0.02; norms are ones); then, re-seeded with
seed as `embtune train` seeds before it creates its adapter, the LoRA layers in PEFT's order (per
module nn.Linear(in, r), nn.Linear(r, out), then A redrawn kaiming-uniform and B zeroed). Before
step s the generator is re-seeded with seed + 1 + s, so the dropout masks are the ones embtune
draws (same libtorch, same draw order). Peak RSS is the high-water mark of the steps (reset
after the weights are made, as bench/train.ts does for embtune). In check mode ("check": true, from
`bench/train --check`) every weight is read instead from a safetensors file that bench/train.ts wrote,
and the loss, gradients and updated adapter are written back (the equal-settings proof).

Argument: one JSON object (see bench/train.ts `BaselineArgs`). Prints one JSON line; an allocation
failure prints {"error": "out of memory", …} and exits with status 3.
Run by bench/train.ts with Debian's /usr/bin/python3 (python3-torch 1.13).
"""
import json
import math
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from qwen3_reference import causal_padding_mask, eager_attention, rms_norm, rope_cos_sin, rotate_half

OUT_OF_MEMORY = 3


# ----------------------------------------------------------------------------- model


class LoraLinear(nn.Module):
    """PEFT's lora.Linear around a frozen bias-free base Linear."""

    def __init__(self, weight, r, alpha, dropout):
        super().__init__()
        out_features, in_features = weight.shape
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.lora_dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        # PEFT update_layer: both nn.Linear draw their default init, then A is redrawn and B zeroed.
        self.lora_A = nn.Linear(in_features, r, bias=False)
        self.lora_B = nn.Linear(r, out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        result = F.linear(x, self.weight)
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class DecoderLayer(nn.Module):
    """Qwen3DecoderLayer: pre-norm attention (q_norm/k_norm before RoPE, GQA, eager) and SiLU MLP."""

    def __init__(self, cfg, weights, lora):
        super().__init__()
        self.cfg = cfg
        # Registration order is PEFT's module order: q, k, v, o, gate, up, down.
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (LoraLinear(weights[n], **lora) for n in ("q", "k", "v", "o"))
        self.gate_proj, self.up_proj, self.down_proj = (LoraLinear(weights[n], **lora) for n in ("gate", "up", "down"))
        self.q_norm, self.k_norm = RMSNorm(cfg["head_dim"], cfg["eps"]), RMSNorm(cfg["head_dim"], cfg["eps"])
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(cfg["hidden"], cfg["eps"]), RMSNorm(cfg["hidden"], cfg["eps"])

    def attention(self, x, mask, cos, sin):
        batch, length, _ = x.shape
        d = self.cfg["head_dim"]
        q = self.q_norm(self.q_proj(x).view(batch, length, -1, d)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(batch, length, -1, d)).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, -1, d).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        # attention_dropout is 0 in Qwen3's config, so the eager path's dropout draws nothing.
        out = eager_attention(q, k, v, mask, d ** -0.5, dropout=0.0, training=self.training)
        return self.o_proj(out.reshape(batch, length, -1))

    def forward(self, h, mask, cos, sin):
        h = h + self.attention(self.input_layernorm(h), mask, cos, sin)
        x = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen3Lora(nn.Module):
    def __init__(self, cfg, base, lora):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Parameter(base["embed_tokens"], requires_grad=False)
        self.layers = nn.ModuleList(DecoderLayer(cfg, w, lora) for w in base["layers"])
        self.norm = RMSNorm(cfg["hidden"], cfg["eps"])
        self.gradient_checkpointing = False

    def forward(self, ids, mask):
        cos, sin = rope_cos_sin(ids.shape[1], self.cfg["head_dim"], self.cfg["theta"])
        causal = causal_padding_mask(mask)
        h = F.embedding(ids, self.embed_tokens)
        if self.gradient_checkpointing and self.training:
            h.requires_grad_(True)  # enable_input_require_grads
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                h = checkpoint(layer, h, causal, cos, sin, use_reentrant=True)
            else:
                h = layer(h, causal, cos, sin)
        return self.norm(h)

    def lora_modules(self):
        """(module path, LoraLinear) in PEFT's order, paths as embtune names them."""
        names = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
        for i, layer in enumerate(self.layers):
            for name in names:
                yield f"layers.{i}.{name}", getattr(layer, name.split(".")[1])

    def trainable(self):
        return [p for _, m in self.lora_modules() for p in (m.lora_A.weight, m.lora_B.weight)]


def random_base(cfg, seed):
    """Base weights drawn in bench/train.ts's order from manual_seed(seed)."""
    torch.manual_seed(seed)
    h, i, d = cfg["hidden"], cfg["intermediate"], cfg["head_dim"]
    nq, nkv = cfg["heads"], cfg["kv_heads"]
    draw = lambda *shape: torch.randn(*shape) * 0.02  # noqa: E731
    embed = draw(cfg["vocab"], h)
    layers = [dict(q=draw(nq * d, h), k=draw(nkv * d, h), v=draw(nkv * d, h), o=draw(h, nq * d), gate=draw(i, h), up=draw(i, h), down=draw(h, i))
              for _ in range(cfg["layers"])]
    return {"embed_tokens": embed, "layers": layers}


# ----------------------------------------------------------------------------- the step


def pool_last_token(hidden, mask):
    """ms-swift 3.8: position −1 when every row ends with a real token (left padding), else sum(mask) − 1."""
    if bool((mask[:, -1] == 1).all()):
        return hidden[:, -1]
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0]), last]


def infonce(emb, rows, negatives, temperature, mask_fake_negative, margin=0.1):
    """REFERENCE §3.3, use_batch, equal group sizes: rows of [anchor, positive, negatives…]."""
    group = 2 + negatives
    anchors = emb[torch.arange(rows) * group]
    doc_index = torch.tensor([g * group + 1 + j for g in range(rows) for j in range(1 + negatives)])
    docs = emb[doc_index]
    targets = torch.arange(rows) * (1 + negatives)
    sim = anchors @ docs.T
    if mask_fake_negative:
        threshold = sim[torch.arange(rows), targets].detach()[:, None] + margin
        sim = sim.masked_fill(sim > threshold, float("-inf"))
    return F.cross_entropy(sim / temperature, targets)


def train_step(model, optimizer, ids, mask, args):
    """Forward, loss, backward, clip, AdamW; returns (loss, total grad norm before clipping, grads before clipping or None)."""
    emb = F.normalize(pool_last_token(model(ids, mask), mask), p=2, dim=1)
    loss = infonce(emb, args["rows"], args["negatives"], args["temperature"], True)
    loss.backward()
    params = model.trainable()
    grads = [p.grad.detach().clone() for p in params] if args.get("check") else None
    norm = torch.nn.utils.clip_grad_norm_(params, args["max_grad_norm"])
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss), float(norm), grads


# ----------------------------------------------------------------------------- safetensors (float32 / int64 only)

DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = bytearray(data[8 + size:])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, _ = DTYPES[entry["dtype"]]
        start, end = entry["data_offsets"]
        out[name] = torch.frombuffer(body[start:end], dtype=dtype).reshape(entry["shape"]).clone() if end > start else torch.zeros(entry["shape"], dtype=dtype)
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def model_from_file(cfg, lora, path):
    """Base and adapter weights as bench/train.ts wrote them (flat checkpoint names; `<module>.lora_A.weight`)."""
    w = read_safetensors(path)
    base = {"embed_tokens": w["embed_tokens.weight"], "layers": []}
    short = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    for i in range(cfg["layers"]):
        base["layers"].append({k: w[f"layers.{i}.{n}.weight"] for k, n in short.items()})
    model = Qwen3Lora(cfg, base, lora)
    with torch.no_grad():
        for name, m in model.lora_modules():
            m.lora_A.weight.copy_(w[f"{name}.lora_A.weight"])
            m.lora_B.weight.copy_(w[f"{name}.lora_B.weight"])
        for i, layer in enumerate(model.layers):
            for norm in ("input_layernorm", "post_attention_layernorm", "self_attn.q_norm", "self_attn.k_norm"):
                getattr(layer, norm.split(".")[-1]).weight.copy_(w[f"layers.{i}.{norm}.weight"])
        model.norm.weight.copy_(w["norm.weight"])
    return model


# ----------------------------------------------------------------------------- main


def guard_memory(limit_bytes):
    """Caps this process's address space at what it has mapped now plus `limit_bytes`, so that running out
    of memory fails an allocation here (reported) instead of waking the kernel's OOM killer."""
    if not limit_bytes:
        return
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + limit_bytes, resource.RLIM_INFINITY))


def reset_peak_rss():
    """Resets the RSS high-water mark (Linux ≥ 4.0), so that the peak reported is the steps'."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb():
    """VmHWM: the RSS high-water mark since the last reset, in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def main():
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    cfg = args["config"]
    lora = dict(r=args["r"], alpha=args["alpha"], dropout=args["dropout"])
    ids = torch.tensor(json.load(open(args["ids"])), dtype=torch.long)
    mask = torch.ones_like(ids)
    guard_memory(args.get("memory_limit_bytes"))
    try:
        if args.get("check"):
            model = model_from_file(cfg, lora, args["weights"])
        else:
            base = random_base(cfg, args["seed"])
            torch.manual_seed(args["seed"])  # as embtune train does before creating the adapter
            model = Qwen3Lora(cfg, base, lora)
            del base
        model.gradient_checkpointing = args["checkpointing"]
        model.train()
        params = model.trainable()
        optimizer = torch.optim.AdamW(params, lr=args["lr"], betas=(0.9, args["beta2"]), eps=1e-8, weight_decay=args["weight_decay"])
        seconds, losses, norms = [], [], []
        reset_peak_rss()
        for step in range(args["steps"]):
            torch.manual_seed(args["seed"] + 1 + step)
            start = time.perf_counter()
            loss, norm, grads = train_step(model, optimizer, ids, mask, args)
            seconds.append(time.perf_counter() - start)
            losses.append(loss)
            norms.append(norm)
    except (RuntimeError, MemoryError) as err:
        if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
            raise
        print(json.dumps({"error": "out of memory", "detail": str(err).splitlines()[0][:300], "peak_rss_mb": peak_rss_mb()}))
        sys.exit(OUT_OF_MEMORY)
    if args.get("check"):
        out = {"loss": torch.tensor([losses[0]]), "grad_norm": torch.tensor([norms[0]])}
        for (name, m), (ga, gb) in zip(model.lora_modules(), zip(grads[0::2], grads[1::2])):
            out[f"grad.{name}.lora_A.weight"], out[f"grad.{name}.lora_B.weight"] = ga, gb
            out[f"after.{name}.lora_A.weight"], out[f"after.{name}.lora_B.weight"] = m.lora_A.weight, m.lora_B.weight
        write_safetensors(args["result"], out)
    print(json.dumps({"seconds": seconds, "losses": losses, "grad_norms": norms, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb()}))


main()
