/**
 * The model side of `embtune train`: an Embedder with a fresh or existing PEFT LoRA adapter
 * (`--train-type lora`), or with every weight trainable (`--train-type full`), exposed as the
 * trainer's `TrainableModel`.
 *
 * Texts are tokenized as ms-swift's `qwen3_emb` template does while training (REFERENCE §3.1):
 * no instruction on queries, `tokens(text) + <|endoftext|>`; BERT encoders get their own
 * `[CLS] … [SEP]`. Pooling and normalisation are the model's (Qwen3: last token, §3.2).
 *
 * Gradient checkpointing (Qwen3 and BERT): the model's own forward with a layer hook
 * (gradient_checkpointing.ts) keeps only each layer's input; backward then recomputes one layer
 * at a time with autograd and pushes the gradient through it — HF's `gradient_checkpointing`
 * per layer, for the cost of one more forward.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { Tensor, isGradEnabled, noGrad } from '../torch/index.js';
import { Embedder } from '../embed/embedder.js';
import { LoraAdapter } from '../models/lora/index.js';
import { saveModelFolder } from '../merge/export.js';
import { manualSeed } from '../torch/creation.js';
import { SafetensorsCheckpoint } from '../formats/checkpoint.js';
import type { TokenIds } from '../tokenizers/index.js';
import { truncationStrategyOf, type TrainConfig } from './config.js';
import type { Encoder } from '../models/registry.js';
import type { TrainableModel } from './trainer.js';
import { GradientCheckpointing } from './gradient_checkpointing.js';

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
  const embedder = await Embedder.load(folder, { dtype: baseDtype, device: config.device });
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
    description: `${embedder.info.family} (${baseDtype}${embedder.device === 'cpu' ? '' : ` on ${embedder.device}`}), ${what}: ${count.toLocaleString('en-US')} trainable parameters, ${maxLengthNote(config, trainable.maxPositions)}`,
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
  /** Gradient checkpointing through the model's own layer loop (a layer hook), when asked for. */
  private readonly checkpointing: GradientCheckpointing | undefined;

  constructor(
    readonly embedder: Embedder,
    readonly folder: string,
    readonly config: TrainConfig,
    readonly params: Map<string, Tensor>,
    readonly adapter: LoraAdapter | undefined,
  ) {
    this.checkpointing = config.gradientCheckpointing ? new GradientCheckpointing() : undefined;
  }

  get padTokenId(): number {
    return this.embedder.tokenizer.padTokenId;
  }

  get device(): string {
    return this.embedder.device;
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

  /** Pooled states in float32; with gradient checkpointing (and autograd on) only the layers' inputs are kept. */
  encode(inputIds: Tensor, attentionMask: Tensor): Tensor {
    const checkpointing = this.checkpointing && isGradEnabled() ? this.checkpointing : undefined;
    checkpointing?.release(); // a forward whose backward never ran (a non-finite loss)
    return this.embedder.encodeTokens(inputIds, attentionMask, { normalize: false, layerHook: checkpointing?.hook });
  }

  backward(loss: Tensor): void {
    if (this.checkpointing?.pending) this.checkpointing.backward(loss);
    else loss.backward();
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
    this.checkpointing?.release();
  }
}
