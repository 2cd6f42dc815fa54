/**
 * The model side of `embtune train`: an Embedder with a fresh or existing PEFT LoRA adapter
 * (`--train-type lora`), or with every weight trainable (`--train-type full`), exposed as the
 * trainer's `TrainableModel`.
 *
 * Texts are tokenized as ms-swift's `qwen3_emb` template does while training (REFERENCE §3.1):
 * no instruction on queries, `tokens(text) + <|endoftext|>`; BERT encoders get their own
 * `[CLS] … [SEP]`. Pooling and normalisation are the model's (Qwen3: last token, §3.2).
 *
 * Gradient checkpointing (Qwen3): the forward keeps only each decoder layer's input; backward
 * then recomputes one layer at a time with autograd and pushes the gradient through it —
 * HF's `gradient_checkpointing` per decoder layer, for the cost of one more forward.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { F, Tensor, arange, dispose, enableGrad, isGradEnabled, keep, noGrad, tidy } from '../torch/index.js';
import { Embedder } from '../embed/embedder.js';
import { LoraAdapter } from '../models/lora/index.js';
import { saveModelFolder } from '../merge/export.js';
import { Qwen3Model, causalPaddingMask, decoderLayer, headDim, rotaryCosSin, scoped } from '../models/qwen3.js';
import { lastTokenPositions, pool } from '../models/pooling.js';
import { gatherPositions } from '../models/forward.js';
import { getRngState, manualSeed, setRngState } from '../torch/creation.js';
import { SafetensorsCheckpoint } from '../formats/checkpoint.js';
import type { TokenIds } from '../tokenizers/index.js';
import { truncationStrategyOf, type TrainConfig } from './config.js';
import type { Encoder } from '../models/registry.js';
import type { TrainableModel } from './trainer.js';

export interface LoadedTrainable {
  trainable: TrainableModel;
  embedder: Embedder;
  adapter?: LoraAdapter;
  /** One line for the log: family, dtype, what trains and how many parameters. */
  description: string;
  dispose(): void;
}

export async function loadTrainableModel(folder: string, config: TrainConfig, say: (line: string) => void = () => {}): Promise<LoadedTrainable> {
  const baseDtype = config.trainType === 'full' ? 'float32' : config.dtype;
  if (config.trainType === 'full' && config.dtype !== 'float32') say('full fine-tuning keeps float32 weights (--torch-dtype bfloat16 applies to LoRA\'s frozen base only)');
  const embedder = await Embedder.load(folder, { dtype: baseDtype });
  let adapter: LoraAdapter | undefined;
  let params: Map<string, Tensor>;
  if (config.trainType === 'lora') {
    if (config.adapter) {
      adapter = LoraAdapter.load(config.adapter, embedder.encoder);
      say(`continuing the adapter in ${config.adapter} (its LoRA config: r ${adapter.config.r}, alpha ${adapter.config.lora_alpha}, dropout ${adapter.config.lora_dropout})`);
    } else {
      manualSeed(config.seed);
      adapter = LoraAdapter.create(embedder.encoder, {
        r: config.loraRank,
        lora_alpha: config.loraAlpha,
        lora_dropout: config.loraDropout,
        target_modules: config.targetModules,
        use_rslora: config.useRslora,
        init_lora_weights: config.initWeights === 'gaussian' ? 'gaussian' : true,
      });
    }
    embedder.attachAdapter(adapter);
    params = adapter.namedParameters();
  } else {
    params = new Map();
    const store = embedder.encoder.weights;
    for (const name of store.keys()) {
      const t = store.get(name);
      if (t.dtype !== 'float32') continue;
      t.requires_grad_(true);
      params.set(store.checkpointName(name), t);
    }
  }
  const count = [...params.values()].reduce((n, t) => n + t.numel(), 0);
  const what = adapter ? `LoRA r ${adapter.config.r} on ${adapter.layers.size} layers` : 'every weight';
  const trainable = new EmbedderTrainable(embedder, folder, config, params, adapter);
  return {
    trainable,
    embedder,
    adapter,
    description: `${embedder.info.family} (${baseDtype}), ${what}: ${count.toLocaleString('en-US')} trainable parameters, ${maxLengthNote(config, trainable.maxPositions)}`,
    dispose() {
      trainable.dispose();
      embedder.dispose();
      adapter?.dispose();
    },
  };
}

/**
 * The model's position limit, ms-swift's `max_length` default (its `max_model_len`): config.json
 * `max_position_embeddings` (BERT's position table; Qwen3's trained context, 32768 for
 * Qwen3-Embedding-0.6B). Undefined when the config does not say.
 */
export function maxPositionsOf(encoder: Encoder): number | undefined {
  const n = (encoder as { config?: { max_position_embeddings?: unknown } }).config?.max_position_embeddings;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The run summary's words for the max length in force. */
function maxLengthNote(config: TrainConfig, positions: number | undefined): string {
  const strategy = truncationStrategyOf(config);
  if (config.maxLength !== undefined) return `max length ${config.maxLength} (--max-length; longer texts: ${strategy})`;
  if (positions === undefined) return 'no max length (the model gives no max_position_embeddings; set --max-length)';
  return `max length ${positions} (the model's max_position_embeddings; longer texts: ${strategy})`;
}

class EmbedderTrainable implements TrainableModel {
  /** Decoder-layer inputs kept by a checkpointed forward, consumed by `backward`. */
  private saved: { inputs: Tensor[]; rngStates: Tensor[]; top: Tensor; cos: Tensor; sin: Tensor; mask: Tensor } | undefined;

  constructor(
    readonly embedder: Embedder,
    readonly folder: string,
    readonly config: TrainConfig,
    readonly params: Map<string, Tensor>,
    readonly adapter: LoraAdapter | undefined,
  ) {
    if (config.gradientCheckpointing && !(embedder.encoder instanceof Qwen3Model)) {
      throw new Error(`--gradient-checkpointing is implemented for Qwen3 models; ${embedder.info.family} models are small enough to train without it`);
    }
  }

  get padTokenId(): number {
    return this.embedder.tokenizer.padTokenId;
  }

  get maxPositions(): number | undefined {
    return maxPositionsOf(this.embedder.encoder);
  }

  /** The tokenizer's template; Qwen3's `<|endoftext|>` counts as a suffix token even where `tokenize` appends it itself. */
  get templateTokens(): { prefix: number; suffix: number } {
    const t = this.embedder.tokenizer.template;
    return { prefix: t.prefix.length, suffix: Math.max(t.suffix.length, this.embedder.info.family === 'qwen3' ? 1 : 0) };
  }

  tokenize(texts: string[]): TokenIds[] {
    return this.embedder.tokenize(texts, { kind: 'document', maxLength: 1 << 30 });
  }

  encode(inputIds: Tensor, attentionMask: Tensor): Tensor {
    if (this.config.gradientCheckpointing && this.embedder.encoder instanceof Qwen3Model && isGradEnabled()) {
      return this.encodeCheckpointed(this.embedder.encoder, inputIds, attentionMask);
    }
    return this.embedder.encodeTokens(inputIds, attentionMask, { normalize: false });
  }

  /**
   * Forward without storing activations: every layer but the last runs under no_grad and only its
   * input is kept; the last layer (whose activations backward needs at once anyway), the final
   * norm and pooling run with autograd from a leaf that stands for the last layer's input. For
   * last-token pooling the last layer computes the pooled positions only (Qwen3Model.forward).
   */
  private encodeCheckpointed(model: Qwen3Model, inputIds: Tensor, attentionMask: Tensor): Tensor {
    this.releaseSaved();
    const w = model.lookup();
    const length = inputIds.size(1) as number;
    const [cos, sin] = rotaryCosSin(arange(length), headDim(model.config), model.config.rope_theta, model.dtype).map((t) => keep(t)) as [Tensor, Tensor];
    const mask = keep(causalPaddingMask(attentionMask, model.dtype));
    const inputs: Tensor[] = [];
    const rngStates: Tensor[] = [];
    let hidden = keep(noGrad(() => F.embedding(inputIds, w('embed_tokens.weight'))));
    const last = model.numLayers - 1;
    for (let i = 0; i < last; i++) {
      inputs.push(hidden);
      // The recompute must draw the same dropout masks (PyTorch's preserve_rng_state).
      rngStates.push(keep(getRngState()));
      const input = hidden;
      hidden = keep(noGrad(() => decoderLayer(scoped(w, `layers.${i}`), model.config, input, cos, sin, mask)));
    }
    const top = keep(hidden.requires_grad_(true));
    this.saved = { inputs, rngStates, top, cos, sin, mask };
    const lastToken = this.embedder.info.pooling === 'lasttoken';
    const positions = lastToken ? lastTokenPositions(attentionMask) : undefined;
    let states = last >= 0 ? decoderLayer(scoped(w, `layers.${last}`), model.config, top, cos, sin, mask, positions) : top;
    if (last < 0 && positions) states = gatherPositions(states, positions);
    const normed = F.rms_norm(states, w('norm.weight'), model.config.rms_norm_eps);
    const pooled = positions ? normed.squeeze(1) : pool(this.embedder.info.pooling, normed, attentionMask);
    return pooled.dtype === 'float32' ? pooled : pooled.to('float32');
  }

  backward(loss: Tensor): void {
    loss.backward();
    const saved = this.saved;
    if (!saved) return;
    this.saved = undefined;
    const model = this.embedder.encoder as Qwen3Model;
    const w = model.lookup();
    let grad = saved.top.grad ? keep(saved.top.grad.detach()) : undefined;
    const after = getRngState();
    try {
      for (let i = saved.inputs.length - 1; i >= 0 && grad; i--) {
        const upstream: Tensor = grad;
        grad = tidy(() => {
          setRngState(saved.rngStates[i]!);
          const x = saved.inputs[i]!.detach().requires_grad_(true);
          const y = enableGrad(() => decoderLayer(scoped(w, `layers.${i}`), model.config, x, saved.cos, saved.sin, saved.mask));
          y.backward(upstream);
          return x.grad ? keep(x.grad.detach()) : undefined;
        });
        upstream.dispose();
      }
      grad?.dispose();
    } finally {
      setRngState(after);
      dispose([after, ...saved.inputs, ...saved.rngStates, saved.top, saved.cos, saved.sin, saved.mask]);
    }
  }

  private releaseSaved(): void {
    if (!this.saved) return;
    const s = this.saved;
    dispose([...s.inputs, ...s.rngStates, s.top, s.cos, s.sin, s.mask]);
    this.saved = undefined;
  }

  trainableParameters(): ReadonlyMap<string, Tensor> {
    return this.params;
  }

  train(mode: boolean): void {
    this.adapter?.train(mode);
  }

  save(dir: string): void {
    if (this.adapter) this.adapter.save(dir, { baseModelNameOrPath: this.config.model });
    else saveModelFolder(this.embedder.encoder, this.folder, dir);
  }

  loadTrainable(dir: string): void {
    if (this.adapter) return this.adapter.loadWeights(dir);
    if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json'))) throw new Error(`${dir}: no model weights to resume a full fine-tune from`);
    const checkpoint = SafetensorsCheckpoint.open(dir);
    try {
      noGrad(() => {
        for (const [name, p] of this.params) {
          const t = checkpoint.tensor(name);
          p.copy_(t);
          t.dispose();
        }
      });
    } finally {
      checkpoint.close();
    }
  }

  dispose(): void {
    this.releaseSaved();
  }
}
