/**
 * Gradient checkpointing as a layer hook (models/forward.ts `LayerHook`), so the model's own
 * forward — the one inference and serving run — is the one that trains: HF's
 * `gradient_checkpointing` per layer, for any architecture whose forward takes the hook.
 *
 * Forward: every layer but the last runs without autograd; only its input, the tensors it reads
 * besides (RoPE tables, the mask) and the generator state are kept. The last layer (whose
 * activations backward needs at once anyway) runs with autograd from a leaf standing for its
 * input. `backward(loss)` then back-propagates the loss to that leaf and walks the layers in
 * reverse, recomputing each with autograd — with the dropout draws of the forward replayed
 * (PyTorch's `preserve_rng_state`) — and pushing the gradient through it.
 */
import { dispose, enableGrad, keep, noGrad, tidy, type Tensor } from '../torch/index.js';
import { getRngState, setRngState } from '../torch/creation.js';
import type { LayerCall, LayerHook } from '../models/forward.js';

interface SavedLayer {
  /** The layer's input: detached, or (the first layer's in full fine-tuning) still on the embedding's graph. */
  input: Tensor;
  context: Tensor[];
  /** The generator state of the layer's device (dropout on a GPU draws from the GPU's generator). */
  rngState: Tensor;
  run: LayerCall['run'];
}

export class GradientCheckpointing {
  #layers: SavedLayer[] = [];
  /** Kept copies of context tensors, one per tensor however many layers read it. */
  #context = new Map<Tensor, Tensor>();
  #top: Tensor | undefined;

  /** The hook to pass to the model's forward (`layerHook`). */
  readonly hook: LayerHook = (call) => {
    if (call.last) {
      if (this.#layers.length === 0) return call.run(call.input, call.context);
      this.#top = keep(call.input.detach().requires_grad_(true));
      return call.run(this.#top, call.context);
    }
    // The input of the first layer keeps its graph when it has one (trainable embeddings).
    const input = keep(call.input.requiresGrad ? call.input.view(...(call.input.shape as number[])) : call.input.detach());
    this.#layers.push({ input, context: call.context.map((t) => this.kept(t)), rngState: keep(getRngState(call.input.device)), run: call.run });
    return noGrad(() => call.run(call.input, call.context));
  };

  /** Whether a forward has saved layers that `backward` has not consumed yet. */
  get pending(): boolean {
    return this.#layers.length > 0 || this.#top !== undefined;
  }

  /** `loss.backward()`, then the recomputed layers' backward, last to first. Frees what the forward kept. */
  backward(loss: Tensor): void {
    loss.backward();
    const layers = this.#layers;
    let grad = this.#top?.grad ? keep(this.#top.grad.detach()) : undefined;
    const device = layers[0]?.input.device ?? 'cpu';
    const after = getRngState(device);
    try {
      for (let i = layers.length - 1; i >= 0 && grad; i--) {
        const saved = layers[i]!;
        const upstream: Tensor = grad;
        grad = tidy(() => {
          setRngState(saved.rngState, device);
          const attached = saved.input.requiresGrad;
          // The first layer's input needs no gradient unless its graph leads on (to trainable embeddings).
          const x = attached ? saved.input : saved.input.detach().requires_grad_(i > 0);
          const y = enableGrad(() => saved.run(x, saved.context));
          y.backward(upstream);
          return !attached && x.grad ? keep(x.grad.detach()) : undefined;
        });
        upstream.dispose();
      }
      grad?.dispose();
    } finally {
      setRngState(after, device);
      after.dispose();
      this.release();
    }
  }

  /** Frees what a forward kept (a forward whose backward never ran, e.g. a non-finite loss). */
  release(): void {
    dispose([...this.#layers.flatMap((l) => [l.input, l.rngState]), ...this.#context.values(), ...(this.#top ? [this.#top] : [])]);
    this.#layers = [];
    this.#context = new Map();
    this.#top = undefined;
  }

  private kept(t: Tensor): Tensor {
    let copy = this.#context.get(t);
    if (!copy) {
      copy = keep(t.detach());
      this.#context.set(t, copy);
    }
    return copy;
  }
}
