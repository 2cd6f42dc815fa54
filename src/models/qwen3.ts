/**
 * Qwen3 decoder blocks (REFERENCE §6.2; transformers 4.51.3 models/qwen3/modeling_qwen3.py):
 * pre-norm RMSNorm, GQA attention with per-head q_norm/k_norm before half-split RoPE, eager
 * attention with an additive causal + padding mask and softmax in float32, SiLU-gated MLP.
 * The memory-bound parts (RMSNorm, attention, silu(gate)·up) are fused autograd nodes that compute
 * the same values but keep less for backward (native/src/fused_ops.cc).
 * Parameter names are the checkpoint's (`layers.{i}.self_attn.q_proj.weight`, …), read through
 * a `Weights` lookup, so the code can be checked line by line against the Python. Every Linear
 * (q/k/v/o_proj, gate/up/down_proj) runs through `linear(w, 'q_proj', x)` (weights.ts), where an
 * attached LoRA adapter (src/models/lora) adds its delta — the model code knows nothing of LoRA.
 * Shapes: B batch, L tokens, H hidden, Nq/Nkv query/key-value heads, D head_dim.
 * Pooling lives in pooling.ts; the embedding and reranking heads in src/embed/.
 */
import { F, Tensor, cat, full, arange, kernels, noGrad, tidy, dispose as torch_dispose } from '../torch/index.js';
import type { DType } from '../torch/index.js';
import { ModelLoadError, WeightStore, linear, loadModelFolder, rootWeights, scoped, type LinearAdapter, type LinearModule, type Weights } from './weights.js';

import { gatherPositions, runLayer, type ForwardOptions } from './forward.js';
import type { KVCache, LayerKVCache } from './kv_cache.js';

export { scoped, type Weights } from './weights.js';

/** The config.json keys this code reads. */
export interface Qwen3Config {
  model_type?: string;
  vocab_size?: number;
  num_hidden_layers?: number;
  tie_word_embeddings?: boolean;
  use_sliding_window?: boolean;
  rope_scaling?: unknown;
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  rms_norm_eps: number;
  rope_theta: number;
  hidden_act?: string;
  /** The trained context (32768 for Qwen3-Embedding-0.6B): the default max length of training. */
  max_position_embeddings?: number;
}

/** A decoder forward's options for generation (Qwen3ForCausalLM): per-row positions and a KV cache. */
export interface DecoderForwardOptions extends ForwardOptions {
  /**
   * [B, L] int64 positions of the new tokens (HF generate: cumsum(attention_mask) − 1, so a
   * left-padded row starts at 0). Default: past … past + L − 1 for every row.
   */
  positionIds?: Tensor;
  /** Keys/values of earlier tokens; the new ones are appended. attentionMask then covers past + new tokens. */
  cache?: KVCache;
}

export function headDim(config: Qwen3Config): number {
  return config.head_dim ?? config.hidden_size / config.num_attention_heads;
}

/** float32's most negative value: transformers fills masked attention logits with it (`torch.finfo(dtype).min`). */
const FLOAT32_MIN = -3.4028234663852886e38;
const BFLOAT16_MIN = -3.3895313892515355e38;
const FLOAT16_MIN = -65504;

export function finfoMin(dtype: DType): number {
  if (dtype === 'bfloat16') return BFLOAT16_MIN;
  if (dtype === 'float16') return FLOAT16_MIN;
  return dtype === 'float64' ? -Number.MAX_VALUE : FLOAT32_MIN;
}

/**
 * RoPE tables (Qwen3RotaryEmbedding, default type): inv_freq[i] = θ^(−2i/D); the angle of
 * position p is p·inv_freq, duplicated to length D; cos and sin in float32, then cast.
 * positions [L] → cos, sin [L, D]; per-row positions [B, L] (generation's position_ids) →
 * [B, 1, L, D], which broadcasts over the heads.
 */
export function rotaryCosSin(positions: Tensor, dim: number, theta: number, dtype: DType): [Tensor, Tensor] {
  return noGrad(() => {
    // On the positions' device (the model's): the tables meet the queries and keys there.
    const device = positions.device;
    const exponents = arange(0, dim, 2, { dtype: 'int64', device }).to('float32').div(dim);
    const invFreq = full([dim / 2], theta, { dtype: 'float32', device }).pow(exponents).reciprocal();
    // A product per element either way (the matmul's inner dimension is 1), so both give HF's values.
    const freqs = positions.shape.length === 1 ? positions.to('float32').unsqueeze(1).matmul(invFreq.unsqueeze(0)) : positions.to('float32').unsqueeze(-1).mul(invFreq).unsqueeze(1);
    const emb = cat([freqs, freqs], -1);
    return [emb.cos().to(dtype), emb.sin().to(dtype)];
  });
}

/**
 * The additive 4-D mask of transformers' eager path: key ≤ query and key not padded → 0, else
 * finfo(dtype).min. attentionMask [B, L] (1 = real token) → [B, 1, L, L]. Rows of pad queries
 * get min everywhere, so softmax is uniform there rather than NaN. With a KV cache the queries
 * are the last `queryLength` of the L positions (the mask covers cached and new tokens, as HF's
 * attention_mask does): → [B, 1, queryLength, L].
 */
export function causalPaddingMask(attentionMask: Tensor, dtype: DType, queryLength?: number): Tensor {
  return noGrad(() => {
    const [, l] = attentionMask.shape as [number, number];
    const q = queryLength ?? l;
    const min = finfoMin(dtype);
    const device = attentionMask.device;
    // Query i (absolute position l − q + i) sees keys ≤ it; built for those q rows only, so a decode step costs O(L), not O(L²).
    const causal = q === l
      ? full([l, l], min, { dtype, device }).triu(1)
      : full([q, l], 0, { dtype, device }).masked_fill(arange(l, undefined, 1, { device }).unsqueeze(0).gt(arange(l - q, l, 1, { device }).unsqueeze(1)), min);
    const padded = attentionMask.unsqueeze(1).unsqueeze(2).eq(0);
    return causal.unsqueeze(0).unsqueeze(0).masked_fill(padded, min);
  });
}

/**
 * Self-attention, hidden [B, L, H] → [B, L, H]. Each block runs in its own `tidy`, so the JS
 * handles of its intermediates are dropped when it returns (autograd keeps what backward
 * needs), as Python's refcounting would: peak memory and allocator reuse then match PyTorch.
 * With `positions` [B], only those queries are computed (keys and values still cover every
 * token): → [B, 1, H], the same values as those rows of the full output.
 */
export function attention(w: Weights, config: Qwen3Config, hidden: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | undefined, positions?: Tensor, cache?: LayerKVCache): Tensor {
  return tidy(() => attentionInner(w, config, hidden, cos, sin, mask, positions, cache));
}

function attentionInner(w: Weights, config: Qwen3Config, hidden: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | undefined, positions?: Tensor, cache?: LayerKVCache): Tensor {
  const [b, l] = hidden.shape as [number, number, number];
  const d = headDim(config);
  const nq = config.num_attention_heads;
  const nkv = config.num_key_value_heads;
  // [B, L, H] → [B, N, L, D]; q_norm/k_norm act on each head's D-vector before RoPE. Each
  // projection runs in its own scope, so only its result outlives it (peak memory as PyTorch's).
  const project = (name: string, input: Tensor, heads: number, norm?: string, rope?: [Tensor, Tensor]) =>
    tidy(() => {
      const x = linear(w, name, input).view(b, input.size(1) as number, heads, d);
      const normed = norm ? F.rms_norm(x, w(`${norm}.weight`), config.rms_norm_eps) : x;
      const t = normed.transpose(1, 2);
      return rope ? F.rotary_embedding(t, rope[0], rope[1]) : t;
    });
  // The queries of `positions` only: their rows of the input, their own RoPE angles ([B, 1, 1, D]) and mask rows.
  const queryRows = positions ? tidy(() => gatherPositions(hidden, positions)) : hidden;
  const queryRope: [Tensor, Tensor] = positions ? [cos, sin].map((t) => tidy(() => t.index_select(0, positions).view(b, 1, 1, d))) as [Tensor, Tensor] : [cos, sin];
  const queryMask = positions && mask ? tidy(() => gatherPositions(mask.transpose(1, 2), positions).transpose(1, 2)) : mask;
  const q = project('q_proj', queryRows, nq, 'q_norm', queryRope);
  const keys = project('k_proj', hidden, nkv, 'k_norm', [cos, sin]);
  const values = project('v_proj', hidden, nkv);
  // With a cache (generation), the new keys/values (after k_norm and RoPE, as HF's DynamicCache
  // stores them) are appended and attention runs over every cached position.
  const [allKeys, allValues] = cache ? cache.update(keys, values) : [keys, values];
  // eager_attention_forward: softmax(q·kᵀ·D^-½ + mask) in float32, cast back, times v, each kv
  // head serving nq/nkv query heads (repeat_kv) — one native call, so the [B, N, L, L]
  // temporaries are freed as soon as they are used (and, training, recomputed in backward).
  const out = tidy(() =>
    F.scaled_dot_product_attention(q, allKeys, allValues, { attnMask: queryMask, scale: d ** -0.5, enableGqa: true })
      .transpose(1, 2)
      .reshape(b, positions ? 1 : l, nq * d),
  );
  torch_dispose(cache ? [q, keys, values, allKeys, allValues] : [q, keys, values]); // the cache's views only: it keeps its storage
  return linear(w, 'o_proj', out);
}

/** down(silu(gate(x)) ⊙ up(x)); each [B, L, I] temporary is freed as soon as it is used. */
export function mlp(w: Weights, hidden: Tensor): Tensor {
  return tidy(() => {
    const gate = linear(w, 'gate_proj', hidden);
    const up = linear(w, 'up_proj', hidden);
    const gated = kernels.silu_mul(gate, up);
    torch_dispose([gate, up]);
    return linear(w, 'down_proj', gated);
  });
}

/**
 * One decoder layer: h + attn(norm(h)), then + mlp(norm(·)). hidden [B, L, H] → [B, L, H], or
 * with `positions` [B] (the last layer of a last-token model) → [B, 1, H], those rows only.
 */
export function decoderLayer(w: Weights, config: Qwen3Config, hidden: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | undefined, positions?: Tensor, cache?: LayerKVCache): Tensor {
  const attended = tidy(() => {
    const residual = positions ? gatherPositions(hidden, positions) : hidden;
    return residual.add(attention(scoped(w, 'self_attn'), config, F.rms_norm(hidden, w('input_layernorm.weight'), config.rms_norm_eps), cos, sin, mask, positions, cache));
  });
  return tidy(() => attended.add(mlp(scoped(w, 'mlp'), F.rms_norm(attended, w('post_attention_layernorm.weight'), config.rms_norm_eps))));
}

/**
 * Qwen3Model: embed_tokens → decoder layers → final RMSNorm (last_hidden_state), plus the LM
 * head (tied to embed_tokens unless the checkpoint has lm_head.weight) for the reranker.
 * Weights use the flat names of the Qwen3-Embedding checkpoint (REFERENCE §6.3).
 */
export class Qwen3Model {
  readonly family = 'qwen3' as const;
  readonly dtype: DType;
  /** Where the weights are (`cpu`, `cuda:0`, …): inputs go there, and every tensor the forward makes is made there. */
  readonly device: string;
  #adapter: LinearAdapter | undefined;

  constructor(
    readonly config: Qwen3Config,
    readonly weights: WeightStore,
  ) {
    checkConfig(config, weights.source);
    this.dtype = weights.get('embed_tokens.weight').dtype;
    this.device = weights.get('embed_tokens.weight').device;
    this.checkShapes();
  }

  /** The model of an HF folder, its weights as `dtype` on `device` (`cpu`, `cuda`, `cuda:N`; checked before loading). */
  static load(folder: string, dtype: DType = 'float32', device: string = 'cpu'): Qwen3Model {
    return loadModelFolder<Qwen3Config, Qwen3Model>(folder, { stripPrefixes: ['model.'] }, dtype, (config, weights) => new Qwen3Model(config, weights), device);
  }

  get numLayers(): number {
    return this.config.num_hidden_layers!;
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
   * The Linear layers an adapter may target, in transformers' module registration order (what
   * PEFT walks): per layer q, k, v, o_proj, then gate, up, down_proj. The LM head is not one
   * of them (PEFT's `all-linear` leaves the output layer out; here it is tied to the embeddings).
   */
  linearModules(): LinearModule[] {
    const names = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
    const out: LinearModule[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      for (const n of names) {
        const [outFeatures, inFeatures] = this.weights.get(`layers.${l}.${n}.weight`).shape as [number, number];
        out.push({ name: `layers.${l}.${n}`, inFeatures, outFeatures });
      }
    }
    return out;
  }

  /** The root parameter lookup, with the attached adapter. */
  lookup(): Weights {
    return rootWeights(this.weights, this.#adapter);
  }

  /**
   * input_ids, attention_mask [B, L] (int64) → last_hidden_state [B, L, H]. With
   * `outputPositions` [B] (int64) → [B, 1, H], the states of those positions only: the last layer
   * then computes its queries, MLP and norm for them alone (what last-token pooling and the
   * reranker read), the same values as the full forward's rows. Generation (qwen3_causal_lm.ts)
   * passes a KV cache and per-row positions (`DecoderForwardOptions`). With a cache, the
   * output positions index the new tokens (the last layer still caches every new token's keys);
   * the reranker's shared-prefix pass uses both.
   */
  forward(inputIds: Tensor, attentionMask: Tensor, opts: DecoderForwardOptions = {}): Tensor {
    const w = this.lookup();
    const length = inputIds.size(1) as number;
    const past = opts.cache ? checkCacheInputs(opts.cache, inputIds, attentionMask, opts, this.numLayers) : 0;
    if (opts.positionIds && opts.outputPositions) throw new Error('outputPositions cannot be combined with per-row positionIds');
    // Positions are 0…L−1 whatever the padding, as transformers does (REFERENCE §6.2); after a
    // cache of `past` tokens they continue from there, unless the caller gives them per row.
    const [cos, sin] = rotaryCosSin(opts.positionIds ?? arange(past, past + length, 1, { device: this.device }), headDim(this.config), this.config.rope_theta, this.dtype);
    const mask = causalPaddingMask(attentionMask, this.dtype, length);
    let hidden = F.embedding(inputIds, w('embed_tokens.weight'));
    for (let i = 0; i < this.numLayers; i++) {
      const input = hidden;
      const last = i === this.numLayers - 1;
      const positions = last ? opts.outputPositions : undefined;
      const cache = opts.cache?.layer(i);
      const layer = scoped(w, `layers.${i}`);
      // The layer hook (gradient checkpointing) may recompute the layer later from kept copies of its context.
      hidden = runLayer(opts.layerHook, {
        index: i,
        last,
        input,
        context: [cos, sin, mask],
        run: (x, [c, s, m]) => decoderLayer(layer, this.config, x, c!, s!, m, positions, cache),
      });
      input.dispose(); // only this handle: autograd keeps what backward needs
    }
    if (this.numLayers === 0 && opts.outputPositions) hidden = gatherPositions(hidden, opts.outputPositions);
    return tidy(() => F.rms_norm(hidden, w('norm.weight'), this.config.rms_norm_eps));
  }

  /** Vocabulary logits of hidden states [..., H] → [..., V]. */
  lmHead(hidden: Tensor): Tensor {
    const head = this.weights.has('lm_head.weight') ? 'lm_head.weight' : 'embed_tokens.weight';
    return F.linear(hidden, this.weights.get(head));
  }

  private checkShapes(): void {
    const c = this.config;
    const [h, i, d] = [c.hidden_size, c.intermediate_size, headDim(c)];
    const [nq, nkv] = [c.num_attention_heads, c.num_key_value_heads];
    const get = (name: string, shape: number[]) => this.weights.get(name, shape);
    get('embed_tokens.weight', [c.vocab_size!, h]);
    get('norm.weight', [h]);
    for (let l = 0; l < this.numLayers; l++) {
      const p = `layers.${l}`;
      get(`${p}.input_layernorm.weight`, [h]);
      get(`${p}.post_attention_layernorm.weight`, [h]);
      get(`${p}.self_attn.q_proj.weight`, [nq * d, h]);
      get(`${p}.self_attn.k_proj.weight`, [nkv * d, h]);
      get(`${p}.self_attn.v_proj.weight`, [nkv * d, h]);
      get(`${p}.self_attn.o_proj.weight`, [h, nq * d]);
      get(`${p}.self_attn.q_norm.weight`, [d]);
      get(`${p}.self_attn.k_norm.weight`, [d]);
      get(`${p}.mlp.gate_proj.weight`, [i, h]);
      get(`${p}.mlp.up_proj.weight`, [i, h]);
      get(`${p}.mlp.down_proj.weight`, [h, i]);
    }
    if (this.weights.has('lm_head.weight')) get('lm_head.weight', [c.vocab_size!, h]);
  }

  dispose(): void {
    this.weights.dispose();
  }
}

/** The cached length, after checking that the new tokens, the mask and the cache agree (a mismatch would attend to the wrong keys). */
function checkCacheInputs(cache: KVCache, inputIds: Tensor, attentionMask: Tensor, opts: DecoderForwardOptions, numLayers: number): number {
  const [b, l] = inputIds.shape as [number, number];
  const past = cache.length;
  if (cache.numLayers !== numLayers) throw new Error(`KV cache has ${cache.numLayers} layers, the model ${numLayers}`);
  if (past > 0 && cache.batchSize !== b) throw new Error(`KV cache holds ${cache.batchSize} rows, input_ids has ${b}`);
  const [mb, ml] = attentionMask.shape as [number, number];
  if (mb !== b || ml !== past + l) throw new Error(`attention_mask is [${mb}, ${ml}]; with ${past} cached tokens and input_ids [${b}, ${l}] it must be [${b}, ${past + l}]`);
  return past;
}

function checkConfig(c: Qwen3Config, source: string): void {
  const need = ['hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads', 'num_hidden_layers', 'vocab_size', 'rms_norm_eps', 'rope_theta'] as const;
  for (const key of need) {
    if (typeof c[key] !== 'number') throw new ModelLoadError(`${source}/config.json: '${key}' must be a number`);
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new ModelLoadError(`${source}/config.json: num_attention_heads (${c.num_attention_heads}) is not a multiple of num_key_value_heads (${c.num_key_value_heads})`);
  }
  if (c.rope_scaling) throw new ModelLoadError(`${source}/config.json: rope_scaling ${JSON.stringify(c.rope_scaling)} is not supported (only the default RoPE)`);
  if (c.use_sliding_window) throw new ModelLoadError(`${source}/config.json: use_sliding_window is not supported`);
  if (c.hidden_act && c.hidden_act !== 'silu') throw new ModelLoadError(`${source}/config.json: hidden_act '${c.hidden_act}' is not supported (Qwen3 uses silu)`);
}
