/**
 * The LoRA adapter a model wrapper (Embedder, Reranker, BertCrossEncoder) applies: one it loaded
 * from a folder itself — freed when replaced or when the wrapper is disposed — or one its caller
 * lends it, which the caller keeps owning.
 */
import type { AdaptableModel } from '../models/registry.js';
import { LoraAdapter } from '../models/lora/index.js';

export class AdapterSlot {
  #owned: LoraAdapter | undefined;

  constructor(private readonly model: AdaptableModel) {}

  /** The LoRA adapter applied to the model, if any. */
  get current(): LoraAdapter | undefined {
    const a = this.model.adapter;
    return a instanceof LoraAdapter ? a : undefined;
  }

  /** Loads the adapter of a folder (then owned) or applies a lent one. */
  apply(adapter: string | LoraAdapter): void {
    if (typeof adapter === 'string') this.#owned = LoraAdapter.load(adapter, this.model);
    this.attach(this.#owned ?? (adapter as LoraAdapter));
  }

  /**
   * At load: applies `adapter` when one is given; if it cannot be (no such folder, does not fit),
   * frees `owner` — the wrapper being built, which nobody else holds yet — and rethrows.
   */
  applyOnLoad(adapter: string | LoraAdapter | undefined, owner: { dispose(): void }): void {
    if (adapter === undefined) return;
    try {
      this.apply(adapter);
    } catch (err) {
      owner.dispose();
      throw err;
    }
  }

  /** Applies `adapter` (undefined removes it); an owned adapter it replaces is freed. */
  attach(adapter: LoraAdapter | undefined): void {
    this.model.attachAdapter(adapter);
    if (this.#owned && this.#owned !== adapter) {
      this.#owned.dispose();
      this.#owned = undefined;
    }
  }

  /** Removes the adapter and frees it if owned (before the model itself is freed). */
  release(): void {
    this.model.attachAdapter(undefined);
    this.#owned?.dispose();
    this.#owned = undefined;
  }
}
