/**
 * Pooling of hidden states [B, L, H] with an attention mask [B, L] into one vector per row,
 * as the reference implementations define it:
 *   - last token (Qwen3-Embedding `last_token_pool`, REFERENCE §5.1): if every row's last
 *     column is real (left padding) take position −1, else position sum(mask) − 1 of each row;
 *   - mean (sentence-transformers Pooling, REFERENCE §9.3): sum(h·mask) / clamp(sum(mask), 1e-9);
 *   - cls: position 0.
 * Matryoshka truncation (`dims`) keeps the first components before normalising (REFERENCE §5.1).
 */
import { F, Tensor, full, tidy } from '../torch/index.js';

export type PoolingMode = 'lasttoken' | 'mean' | 'cls';

/** The position last-token pooling reads in each row, [B] int64 (the rule of `last_token_pool`). */
export function lastTokenPositions(attentionMask: Tensor): Tensor {
  return tidy(() => {
    const [b, l] = attentionMask.shape as [number, number];
    const leftPadded = attentionMask.select(1, l - 1).sum().item() === b;
    if (leftPadded) return full([b], l - 1, { dtype: 'int64', device: attentionMask.device });
    return attentionMask.sum(1).sub(1).clamp_min(0).to('int64');
  });
}

export function lastTokenPool(hidden: Tensor, attentionMask: Tensor): Tensor {
  return tidy(() => {
    const [b, , h] = hidden.shape as [number, number, number];
    const index = lastTokenPositions(attentionMask).view(b, 1, 1).expand(b, 1, h);
    return hidden.gather(1, index).squeeze(1);
  });
}

export function meanPool(hidden: Tensor, attentionMask: Tensor): Tensor {
  return tidy(() => {
    const mask = attentionMask.unsqueeze(-1).to(hidden.dtype);
    return hidden.mul(mask).sum(1).div(mask.sum(1).clamp_min(1e-9));
  });
}

export function clsPool(hidden: Tensor): Tensor {
  return hidden.select(1, 0);
}

export function pool(mode: PoolingMode, hidden: Tensor, attentionMask: Tensor): Tensor {
  if (mode === 'lasttoken') return lastTokenPool(hidden, attentionMask);
  if (mode === 'mean') return meanPool(hidden, attentionMask);
  return clsPool(hidden);
}

/** The first `dims` components (Matryoshka), then L2 normalisation when asked. */
export function finishEmbedding(pooled: Tensor, opts: { dims?: number; normalize?: boolean }): Tensor {
  return tidy(() => {
    const width = pooled.size(-1) as number;
    if (opts.dims !== undefined && (!Number.isInteger(opts.dims) || opts.dims < 1 || opts.dims > width)) {
      throw new Error(`dims must be an integer from 1 to ${width}, got ${opts.dims}`);
    }
    const cut = opts.dims !== undefined && opts.dims < width ? pooled.narrow(-1, 0, opts.dims) : pooled;
    return opts.normalize === false ? cut.contiguous() : F.normalize(cut, 2, -1);
  });
}

