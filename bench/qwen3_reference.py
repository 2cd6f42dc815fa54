"""Qwen3 building blocks in plain PyTorch, as transformers' modeling_qwen3 computes them; shared by
the PyTorch baselines of bench/engine and bench/embed (run with Debian's /usr/bin/python3)."""
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
