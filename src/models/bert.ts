/**
 * BERT encoder (m3e-small / bge-small-zh style), as transformers 4.51.3 models/bert/modeling_bert.py
 * runs it in eager mode: word + token-type + absolute position embeddings → LayerNorm; post-LN
 * layers of self-attention (scores / √d + (1 − mask)·finfo.min) and a GELU(erf) MLP.
 * Checkpoint names are BertModel's (`embeddings.word_embeddings.weight`, `encoder.layer.{i}…`);
 * `bert.`-prefixed checkpoints and legacy LayerNorm gamma/beta are accepted (weights.ts).
 * Every Linear (query/key/value, attention output dense, intermediate dense, output dense, pooler
 * dense) runs through `linear(w, …)` (weights.ts), where an attached LoRA adapter adds its delta.
 * Shapes: B batch, L tokens, H hidden, N heads, D = H / N.
 */
import { F, Tensor, arange, noGrad, tidy, zeros_like, type DType } from '../torch/index.js';
import { ModelLoadError, WeightStore, linear, loadModelFolder, rootWeights, scoped, type LinearAdapter, type LinearModule, type Weights } from './weights.js';
import { finfoMin } from './qwen3.js';
import { gatherPositions, runLayer, type ForwardOptions, type LayerHook } from './forward.js';

export interface BertConfig {
  model_type?: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  hidden_act?: string;
  position_embedding_type?: string;
}

export const BERT_NAME_RULES = {
  stripPrefixes: ['bert.'],
  ignore: [/^cls\./],
  renames: [
    [/LayerNorm\.gamma$/, 'LayerNorm.weight'],
    [/LayerNorm\.beta$/, 'LayerNorm.bias'],
  ] as [RegExp, string][],
};

export class BertModel {
  readonly family = 'bert' as const;
  readonly dtype: DType;
  /** Where the weights are (`cpu`, `cuda:0`, …): inputs go there, and every tensor the forward makes is made there. */
  readonly device: string;
  #adapter: LinearAdapter | undefined;

  constructor(
    readonly config: BertConfig,
    readonly weights: WeightStore,
  ) {
    checkConfig(config, weights.source);
    this.dtype = weights.get('embeddings.word_embeddings.weight').dtype;
    this.device = weights.get('embeddings.word_embeddings.weight').device;
    this.checkShapes();
  }

  /** The model of an HF folder, its weights as `dtype` on `device` (`cpu`, `cuda`, `cuda:N`; checked before loading). */
  static load(folder: string, dtype: DType = 'float32', device: string = 'cpu'): BertModel {
    return loadModelFolder<BertConfig, BertModel>(folder, BERT_NAME_RULES, dtype, (config, weights) => new BertModel(config, weights), device);
  }

  /** The adapter (LoRA) its Linear layers consult, if one is attached. */
  get adapter(): LinearAdapter | undefined {
    return this.#adapter;
  }

  /** Attaches an adapter (checked against this model's Linear layers), or detaches with undefined. */
  attachAdapter(adapter: LinearAdapter | undefined): void {
    adapter?.checkFits(this.linearModules(), this.weights.source);
    this.#adapter = adapter;
  }

  /**
   * The Linear layers an adapter may target, in BertModel's module registration order (what PEFT
   * walks): per layer attention.self.query/key/value, attention.output.dense,
   * intermediate.dense, output.dense; then pooler.dense when the checkpoint has a pooler.
   */
  linearModules(): LinearModule[] {
    const names = ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense', 'intermediate.dense', 'output.dense'];
    const paths: string[] = [];
    for (let l = 0; l < this.config.num_hidden_layers; l++) paths.push(...names.map((n) => `encoder.layer.${l}.${n}`));
    if (this.weights.has('pooler.dense.weight')) paths.push('pooler.dense');
    return paths.map((name) => {
      const [outFeatures, inFeatures] = this.weights.get(`${name}.weight`).shape as [number, number];
      return { name, inFeatures, outFeatures };
    });
  }

  /** The root parameter lookup, with the attached adapter. */
  lookup(): Weights {
    return rootWeights(this.weights, this.#adapter);
  }

  /**
   * input_ids, attention_mask (, token_type_ids: zeros if absent) [B, L] → last_hidden_state
   * [B, L, H], or [B, 1, H] at `outputPositions` [B] (every token is computed either way).
   */
  forward(inputIds: Tensor, attentionMask: Tensor, opts: ForwardOptions & { tokenTypeIds?: Tensor } = {}): Tensor {
    const hidden = this.lastHiddenState(inputIds, attentionMask, opts.tokenTypeIds, opts.layerHook);
    if (!opts.outputPositions) return hidden;
    const picked = tidy(() => gatherPositions(hidden, opts.outputPositions!));
    hidden.dispose();
    return picked;
  }

  private lastHiddenState(inputIds: Tensor, attentionMask: Tensor, tokenTypeIds?: Tensor, layerHook?: LayerHook): Tensor {
    const w = this.lookup();
    const length = inputIds.size(1) as number;
    if (length > this.config.max_position_embeddings) {
      throw new Error(`BERT takes at most ${this.config.max_position_embeddings} tokens (max_position_embeddings), got ${length}; truncate the input`);
    }
    let hidden = tidy(() => {
      const types = tokenTypeIds ?? zeros_like(inputIds);
      // transformers adds token types to the words first, then the positions.
      const embeddings = F.embedding(inputIds, w('embeddings.word_embeddings.weight'))
        .add(F.embedding(types, w('embeddings.token_type_embeddings.weight')))
        .add(F.embedding(arange(length, undefined, 1, { device: this.device }).unsqueeze(0), w('embeddings.position_embeddings.weight')));
      return layerNorm(w, 'embeddings.LayerNorm', embeddings, this.config.layer_norm_eps);
    });
    const mask = extendedMask(attentionMask, this.dtype);
    const layers = this.config.num_hidden_layers;
    for (let i = 0; i < layers; i++) {
      const input = hidden;
      const layer = scoped(w, `encoder.layer.${i}`);
      hidden = runLayer(layerHook, { index: i, last: i === layers - 1, input, context: [mask], run: (x, [m]) => tidy(() => bertLayer(layer, this.config, x, m!)) });
      input.dispose();
    }
    mask.dispose();
    return hidden;
  }

  /** BertPooler: tanh(dense(h[:, 0])). */
  pooler(hidden: Tensor): Tensor {
    return tidy(() => linear(this.lookup(), 'pooler.dense', hidden.select(1, 0), { bias: true }).tanh());
  }

  private checkShapes(): void {
    const c = this.config;
    const [h, i] = [c.hidden_size, c.intermediate_size];
    const get = (name: string, shape: number[]) => this.weights.get(name, shape);
    get('embeddings.word_embeddings.weight', [c.vocab_size, h]);
    get('embeddings.position_embeddings.weight', [c.max_position_embeddings, h]);
    get('embeddings.token_type_embeddings.weight', [c.type_vocab_size, h]);
    get('embeddings.LayerNorm.weight', [h]);
    get('embeddings.LayerNorm.bias', [h]);
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `encoder.layer.${l}`;
      for (const proj of ['query', 'key', 'value']) {
        get(`${p}.attention.self.${proj}.weight`, [h, h]);
        get(`${p}.attention.self.${proj}.bias`, [h]);
      }
      get(`${p}.attention.output.dense.weight`, [h, h]);
      get(`${p}.attention.output.dense.bias`, [h]);
      get(`${p}.attention.output.LayerNorm.weight`, [h]);
      get(`${p}.attention.output.LayerNorm.bias`, [h]);
      get(`${p}.intermediate.dense.weight`, [i, h]);
      get(`${p}.intermediate.dense.bias`, [i]);
      get(`${p}.output.dense.weight`, [h, i]);
      get(`${p}.output.dense.bias`, [h]);
      get(`${p}.output.LayerNorm.weight`, [h]);
      get(`${p}.output.LayerNorm.bias`, [h]);
    }
  }

  dispose(): void {
    this.weights.dispose();
  }
}

function layerNorm(w: Weights, prefix: string, x: Tensor, eps: number): Tensor {
  return F.layer_norm(x, [x.size(-1) as number], w(`${prefix}.weight`), w(`${prefix}.bias`), eps);
}

/** An nn.Linear with bias (every BERT Linear has one). */
function dense(w: Weights, module: string, x: Tensor): Tensor {
  return linear(w, module, x, { bias: true });
}

/** get_extended_attention_mask: [B, L] → [B, 1, 1, L], 0 where attended, finfo.min where padded. */
function extendedMask(attentionMask: Tensor, dtype: DType): Tensor {
  return noGrad(() => tidy(() => attentionMask.unsqueeze(1).unsqueeze(2).to(dtype).neg().add(1).mul(finfoMin(dtype))));
}

function bertLayer(w: Weights, config: BertConfig, hidden: Tensor, mask: Tensor): Tensor {
  const [b, l, h] = hidden.shape as [number, number, number];
  const n = config.num_attention_heads;
  const d = h / n;
  const heads = (x: Tensor) => x.view(b, l, n, d).permute(0, 2, 1, 3);
  const q = heads(dense(w, 'attention.self.query', hidden));
  const k = heads(dense(w, 'attention.self.key', hidden));
  const v = heads(dense(w, 'attention.self.value', hidden));
  // softmax(q·kᵀ/√D + mask)·v as one native call (BertSdpaSelfAttention's form), so the
  // [B, N, L, L] temporaries are freed as soon as they are used.
  const context = tidy(() => F.scaled_dot_product_attention(q, k, v, { attnMask: mask, scale: 1 / Math.sqrt(d) }).permute(0, 2, 1, 3).contiguous().view(b, l, h));
  const attended = layerNorm(w, 'attention.output.LayerNorm', dense(w, 'attention.output.dense', context).add(hidden), config.layer_norm_eps);
  const intermediate = tidy(() => F.gelu(dense(w, 'intermediate.dense', attended)));
  return layerNorm(w, 'output.LayerNorm', dense(w, 'output.dense', intermediate).add(attended), config.layer_norm_eps);
}

function checkConfig(c: BertConfig, source: string): void {
  const need = ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'max_position_embeddings', 'type_vocab_size', 'layer_norm_eps'] as const;
  for (const key of need) if (typeof c[key] !== 'number') throw new ModelLoadError(`${source}/config.json: '${key}' must be a number`);
  if (c.hidden_size % c.num_attention_heads !== 0) throw new ModelLoadError(`${source}/config.json: hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`);
  if (c.hidden_act && c.hidden_act !== 'gelu') throw new ModelLoadError(`${source}/config.json: hidden_act '${c.hidden_act}' is not supported (only 'gelu', the erf form)`);
  if (c.position_embedding_type && c.position_embedding_type !== 'absolute') {
    throw new ModelLoadError(`${source}/config.json: position_embedding_type '${c.position_embedding_type}' is not supported (only 'absolute')`);
  }
}
