/**
 * The past keys and values of a decoder, per layer (transformers' DynamicCache: keys after
 * k_norm and RoPE, values as projected, [B, N_kv, S, D]). Each layer's storage is preallocated
 * along S and grows by doubling, so a decode step writes one column instead of copying the whole
 * cache (`cat` per step would move O(S) per token, O(S²) per answer). Attention reads views of
 * the filled part. Inference only: the cache is written in place, so it must be used under
 * `noGrad` (a step recorded by autograd would be overwritten by the next one).
 */
import { Tensor, empty, isGradEnabled, keep, noGrad, type DType } from '../torch/index.js';

/** What one attention layer asks of the cache. */
export interface LayerKVCache {
  /**
   * Appends keys, values [B, N_kv, L, D] (the caller keeps owning them) and returns views of
   * every cached key and value, [B, N_kv, S + L, D], made in the caller's scope.
   */
  update(keys: Tensor, values: Tensor): [Tensor, Tensor];
}

export interface KVCacheOptions {
  /** Positions to reserve at the first write (prompt + max new tokens); it grows past them if needed. */
  capacity?: number;
}

class LayerCache implements LayerKVCache {
  keys: Tensor | undefined;
  values: Tensor | undefined;
  length = 0;

  constructor(private readonly capacityHint: number) {}

  get capacity(): number {
    return this.keys ? (this.keys.size(2) as number) : 0;
  }

  update(keys: Tensor, values: Tensor): [Tensor, Tensor] {
    if (isGradEnabled()) throw new Error('KVCache.update: the cache is written in place; run generation under noGrad()');
    const [b, n, l, d] = keys.shape as [number, number, number, number];
    if (this.keys && (this.keys.size(0) !== b || this.keys.size(1) !== n || this.keys.size(3) !== d)) {
      throw new Error(`KVCache: keys [${keys.shape.join(', ')}] do not fit the cache's [${this.keys.shape.join(', ')}]`);
    }
    if (this.length + l > this.capacity) this.grow(b, n, d, keys.dtype, keys.device, Math.max(this.length + l, 2 * this.capacity, this.capacityHint));
    this.keys!.narrow(2, this.length, l).copy_(keys);
    this.values!.narrow(2, this.length, l).copy_(values);
    this.length += l;
    return [this.keys!.narrow(2, 0, this.length), this.values!.narrow(2, 0, this.length)];
  }

  private grow(b: number, n: number, d: number, dtype: DType, device: string, capacity: number): void {
    noGrad(() => {
      const keys = keep(empty([b, n, capacity, d], { dtype, device }));
      const values = keep(empty([b, n, capacity, d], { dtype, device }));
      if (this.keys && this.values && this.length > 0) {
        keys.narrow(2, 0, this.length).copy_(this.keys.narrow(2, 0, this.length));
        values.narrow(2, 0, this.length).copy_(this.values.narrow(2, 0, this.length));
      }
      this.keys?.dispose();
      this.values?.dispose();
      [this.keys, this.values] = [keys, values];
    });
  }

  selectRows(rows: Tensor): void {
    if (!this.keys || !this.values) return;
    const [keys, values] = [keep(this.keys.index_select(0, rows)), keep(this.values.index_select(0, rows))];
    this.keys.dispose();
    this.values.dispose();
    [this.keys, this.values] = [keys, values];
  }

  dispose(): void {
    this.keys?.dispose();
    this.values?.dispose();
    this.keys = this.values = undefined;
    this.length = 0;
  }
}

export class KVCache {
  readonly #layers: LayerCache[];

  constructor(
    readonly numLayers: number,
    opts: KVCacheOptions = {},
  ) {
    this.#layers = Array.from({ length: numLayers }, () => new LayerCache(opts.capacity ?? 0));
  }

  /** Tokens cached so far (every layer holds the same number once a forward has finished). */
  get length(): number {
    return this.#layers[0]?.length ?? 0;
  }

  /** Rows (sequences) held; 0 before the first write. */
  get batchSize(): number {
    return (this.#layers[0]?.keys?.size(0) as number | undefined) ?? 0;
  }

  layer(i: number): LayerKVCache {
    const layer = this.#layers[i];
    if (!layer) throw new RangeError(`KVCache: layer ${i} out of range (${this.numLayers} layers)`);
    return layer;
  }

  /** Keeps only the batch rows `rows` ([R] int64), in that order: finished sequences leave the batch. */
  selectRows(rows: Tensor): void {
    noGrad(() => this.#layers.forEach((l) => l.selectRows(rows)));
  }

  dispose(): void {
    for (const l of this.#layers) l.dispose();
  }
}
