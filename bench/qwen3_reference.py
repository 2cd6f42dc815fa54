"""Qwen3 building blocks in plain PyTorch, as transformers' modeling_qwen3 computes them; shared by
the PyTorch baselines of bench/engine, bench/embed and bench/train (run with Debian's /usr/bin/python3)."""
import torch


def rms_norm(x, w, eps=1e-6):
    """Qwen3RMSNorm: normalise in float32, cast back, then times the weight."""
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return w * x.to(dtype)


def rotate_half(x):
    """Half-split rotation: cat(-x[..., D/2:], x[..., :D/2])."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(length, head_dim, theta):
    """Qwen3RotaryEmbedding (default RoPE): cos, sin [L, D] of positions 0…L−1, computed in float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.arange(length).float()[:, None] @ inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def causal_padding_mask(attention_mask):
    """The additive [B, 1, L, L] mask of transformers' eager path: 0 where key ≤ query and the key is real, else finfo.min."""
    batch, length = attention_mask.shape
    minv = torch.finfo(torch.float32).min
    causal = torch.full((length, length), minv).triu(1)[None, None].expand(batch, 1, length, length).clone()
    return causal.masked_fill(attention_mask[:, None, None, :] == 0, minv)


def repeat_kv(x, n_rep):
    """[B, Nkv, L, D] → [B, Nkv·n_rep, L, D]: kv head j serves query heads j·n_rep … j·n_rep + n_rep − 1."""
    batch, heads, length, dim = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(batch, heads, n_rep, length, dim).reshape(batch, heads * n_rep, length, dim)


def eager_attention(q, k, v, mask, scaling, dropout=0.0, training=False):
    """transformers' eager_attention_forward: softmax(q·kᵀ·scaling + mask) in float32, cast back, dropout, times v.
    q [B, N, L, D], k and v [B, Nkv, L, D] → [B, L, N, D]."""
    n_rep = q.shape[1] // k.shape[1]
    keys, values = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    weights = torch.matmul(q, keys.transpose(2, 3)) * scaling + mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(q.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=training)
    return torch.matmul(weights, values).transpose(1, 2).contiguous()
