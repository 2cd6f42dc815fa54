/**
 * What an encoder's forward may be asked besides ids and mask, shared by the architectures.
 * A last-token embedding or a reranker score reads one position per row; a decoder asked for
 * those positions alone runs its last layer for them only. Training may take over how each layer
 * runs (gradient checkpointing), so that training, inference and serving run one layer loop.
 */
import type { Tensor } from '../torch/index.js';

/** One layer of a forward's layer loop, as handed to a `LayerHook`. */
export interface LayerCall {
  /** 0-based layer index. */
  readonly index: number;
  /** Whether this is the model's last layer. */
  readonly last: boolean;
  /** The layer's input hidden states. */
  readonly input: Tensor;
  /** Tensors the layer reads besides its input (RoPE tables, the attention mask): what a recompute must keep. */
  readonly context: readonly Tensor[];
  /** The layer itself: its output from an input and the context (in `context`'s order). */
  run(input: Tensor, context: readonly Tensor[]): Tensor;
}

/**
 * Runs one layer of the loop and returns its output. The default runs `call.run(call.input,
 * call.context)`; gradient checkpointing (src/train) runs it without autograd, keeps the input
 * and recomputes the layer in backward (HF's `gradient_checkpointing` per layer). The loop
 * disposes its own handle of the input afterwards: a hook that keeps it takes its own handle.
 */
export type LayerHook = (call: LayerCall) => Tensor;

export interface ForwardOptions {
  /**
   * [B] int64: return the states of these positions only, [B, 1, H]. Decoders (Qwen3) then run
   * their last layer for those positions alone; encoders compute everything and pick them.
   */
  outputPositions?: Tensor;
  /** How each layer runs (default: directly). */
  layerHook?: LayerHook;
}

/** One layer through `hook`, or directly without one. */
export function runLayer(hook: LayerHook | undefined, call: LayerCall): Tensor {
  return hook ? hook(call) : call.run(call.input, call.context);
}

/** Rows `positions` [B] (int64, one position per batch row) of x [B, L, ...] → [B, 1, ...]. */
export function gatherPositions(x: Tensor, positions: Tensor): Tensor {
  const [b, , ...rest] = x.shape as number[];
  const index = positions.view(b!, 1, ...rest.map(() => 1)).expand(b!, 1, ...rest);
  return x.gather(1, index);
}
