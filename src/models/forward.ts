/**
 * What an encoder's forward may be asked besides ids and mask, shared by the architectures.
 * A last-token embedding or a reranker score reads one position per row; a decoder asked for
 * those positions alone runs its last layer for them only.
 */
import type { Tensor } from '../torch/index.js';

export interface ForwardOptions {
  /**
   * [B] int64: return the states of these positions only, [B, 1, H]. Decoders (Qwen3) then run
   * their last layer for those positions alone; encoders compute everything and pick them.
   */
  outputPositions?: Tensor;
}

/** Rows `positions` [B] (int64, one position per batch row) of x [B, L, ...] → [B, 1, ...]. */
export function gatherPositions(x: Tensor, positions: Tensor): Tensor {
  const [b, , ...rest] = x.shape as number[];
  const index = positions.view(b!, 1, ...rest.map(() => 1)).expand(b!, 1, ...rest);
  return x.gather(1, index);
}
