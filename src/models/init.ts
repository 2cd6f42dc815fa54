/**
 * A model initialised from scratch (`embtune init`), for users who pretrain their own small
 * encoder: the full config.json transformers needs to build the architecture, and weights drawn
 * as transformers' `_init_weights` draws them (4.51.3: `BertPreTrainedModel._init_weights`,
 * `Qwen3PreTrainedModel._init_weights`):
 *
 *   nn.Linear      weight ~ normal(0, initializer_range), bias 0
 *   nn.Embedding   weight ~ normal(0, initializer_range), the `padding_idx` row 0
 *                  (BERT's word embeddings: padding_idx = pad_token_id; Qwen3 sets none)
 *   LayerNorm      weight 1, bias 0;   RMSNorm (Qwen3, q_norm/k_norm too)   weight 1
 *
 * Draws come from the engine's generator after `manualSeed(seed)`, tensor by tensor in checkpoint
 * order, so a seed gives the same weights on every run (not transformers' values: those depend on
 * the draws nn.Module constructors make before `_init_weights`). Tensor names are the ones our
 * loader and transformers' `BertModel` / `Qwen3Model` read (flat, no `model.`/`bert.` prefix).
 * Writing the folder is the exporter's (src/merge); this module only makes the values.
 */
import { keep, manualSeed, noGrad, ones, randn, zeros, type Tensor } from '../torch/index.js';
import { JsonDecimal, type JsonObject, type JsonValue } from '../formats/strict_json.js';
import { pyFloat } from '../formats/python_json.js';

export type InitArch = 'bert' | 'qwen3';
export const INIT_ARCHS: readonly InitArch[] = ['bert', 'qwen3'];
export type InitPreset = 'tiny' | 'small';
export const INIT_PRESETS: readonly InitPreset[] = ['tiny', 'small'];

/** The config values an init reads; every other config.json key is carried as given. */
export interface InitShape {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  initializer_range: number;
  /** BERT */
  type_vocab_size?: number;
  pad_token_id?: number | null;
  /** Qwen3 */
  num_key_value_heads?: number;
  head_dim?: number;
}

/**
 * The size presets. BERT tiny/small are the shapes of Google's BERT miniatures (L-2 H-128 A-2,
 * L-4 H-512 A-8; small is also m3e-small's, REFERENCE §9.3); Qwen3's keep Qwen3-0.6B's ratios
 * (GQA 2:1, intermediate 3× hidden) at those widths.
 */
const SHAPES: Record<InitArch, Record<InitPreset, Record<string, number>>> = {
  bert: {
    tiny: { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 512 },
    small: { hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048 },
  },
  qwen3: {
    tiny: { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, intermediate_size: 384 },
    small: { hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 64, intermediate_size: 1536 },
  },
};

/** Special token ids of the tokenizer the model is made for. */
export interface InitTokens {
  vocabSize: number;
  padTokenId: number;
  /** Qwen3: `<|endoftext|>` (bos = eos = 151643 for Qwen3-Embedding, REFERENCE §6.1). */
  eosTokenId?: number;
}

/** Keys Python holds as floats (written `0.0`, `1e-12` as transformers writes them). */
const FLOAT_KEYS = new Set(['initializer_range', 'layer_norm_eps', 'rms_norm_eps', 'rope_theta', 'hidden_dropout_prob', 'attention_probs_dropout_prob', 'attention_dropout']);

/**
 * config.json of a fresh `arch` model: transformers' defaults for the architecture (BertConfig,
 * Qwen3Config 4.51.3), the preset's sizes, the tokenizer's vocabulary size and special ids, then
 * `overrides` (a user's config file) on top.
 */
export function initialConfig(arch: InitArch, preset: InitPreset, tokens: InitTokens, overrides: Record<string, unknown> = {}): JsonObject {
  const base: Record<string, unknown> =
    arch === 'bert'
      ? {
          architectures: ['BertModel'], model_type: 'bert', attention_probs_dropout_prob: 0.1, classifier_dropout: null, hidden_act: 'gelu', hidden_dropout_prob: 0.1,
          initializer_range: 0.02, layer_norm_eps: 1e-12, max_position_embeddings: 512, pad_token_id: tokens.padTokenId, position_embedding_type: 'absolute',
          type_vocab_size: 2, use_cache: true,
        }
      : {
          architectures: ['Qwen3Model'], model_type: 'qwen3', attention_bias: false, attention_dropout: 0.0, bos_token_id: tokens.eosTokenId ?? null, eos_token_id: tokens.eosTokenId ?? null,
          hidden_act: 'silu', initializer_range: 0.02, max_position_embeddings: 32768, max_window_layers: 0, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000,
          sliding_window: null, tie_word_embeddings: true, use_cache: true, use_sliding_window: false,
        };
  const merged: Record<string, unknown> = { ...base, ...SHAPES[arch][preset], vocab_size: tokens.vocabSize, torch_dtype: 'float32', transformers_version: '4.51.3', ...overrides };
  if (arch === 'qwen3' && overrides.max_window_layers === undefined) merged.max_window_layers = merged.num_hidden_layers;
  checkShape(arch, merged, tokens);
  return new Map(Object.entries(merged).map(([k, v]) => [k, FLOAT_KEYS.has(k) && typeof v === 'number' ? pyFloat(v) : (v as JsonValue)]));
}

function checkShape(arch: InitArch, c: Record<string, unknown>, tokens: InitTokens): void {
  const int = (key: string, min = 1) => {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new Error(`config: '${key}' must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  for (const key of ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'max_position_embeddings']) int(key);
  const range = c.initializer_range;
  if (typeof range !== 'number' || !(range > 0)) throw new Error(`config: 'initializer_range' must be a number > 0, got ${JSON.stringify(range)}`);
  if ((c.vocab_size as number) < tokens.vocabSize) throw new Error(`config: vocab_size ${String(c.vocab_size)} is smaller than the tokenizer's ${tokens.vocabSize} tokens`);
  if (arch === 'bert') {
    int('type_vocab_size');
    if ((c.hidden_size as number) % (c.num_attention_heads as number) !== 0) throw new Error(`config: hidden_size ${String(c.hidden_size)} is not a multiple of num_attention_heads ${String(c.num_attention_heads)}`);
  } else {
    const kv = int('num_key_value_heads');
    if (c.head_dim === undefined) c.head_dim = Math.floor((c.hidden_size as number) / (c.num_attention_heads as number));
    int('head_dim');
    if ((c.num_attention_heads as number) % kv !== 0) throw new Error(`config: num_attention_heads ${String(c.num_attention_heads)} is not a multiple of num_key_value_heads ${kv}`);
  }
}

/** A config.json map (from `initialConfig`) as the numbers `initialWeights` reads. */
export function initShapeOf(config: JsonObject): InitShape {
  const plain = Object.fromEntries([...config].map(([k, v]) => [k, v instanceof JsonDecimal ? v.value : v]));
  return plain as unknown as InitShape;
}

/** What one tensor starts as. */
type Init = { kind: 'normal' | 'zeros' | 'ones'; shape: number[]; paddingRow?: number };

/** Every tensor of a fresh `arch` model, by checkpoint name, in checkpoint order. */
export function initPlan(arch: InitArch, c: InitShape): [string, Init][] {
  const normal = (...shape: number[]): Init => ({ kind: 'normal', shape });
  const zero = (...shape: number[]): Init => ({ kind: 'zeros', shape });
  const one = (...shape: number[]): Init => ({ kind: 'ones', shape });
  const h = c.hidden_size;
  const i = c.intermediate_size;
  const plan: [string, Init][] = [];
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    plan.push([`${name}.weight`, normal(out, inp)]);
    if (bias) plan.push([`${name}.bias`, zero(out)]);
  };
  if (arch === 'bert') {
    const pad = c.pad_token_id ?? undefined;
    plan.push(['embeddings.word_embeddings.weight', { ...normal(c.vocab_size, h), ...(pad !== undefined ? { paddingRow: pad } : {}) }]);
    plan.push(['embeddings.position_embeddings.weight', normal(c.max_position_embeddings, h)]);
    plan.push(['embeddings.token_type_embeddings.weight', normal(c.type_vocab_size ?? 2, h)]);
    plan.push(['embeddings.LayerNorm.weight', one(h)], ['embeddings.LayerNorm.bias', zero(h)]);
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `encoder.layer.${l}`;
      for (const proj of ['query', 'key', 'value']) linear(`${p}.attention.self.${proj}`, h, h, true);
      linear(`${p}.attention.output.dense`, h, h, true);
      plan.push([`${p}.attention.output.LayerNorm.weight`, one(h)], [`${p}.attention.output.LayerNorm.bias`, zero(h)]);
      linear(`${p}.intermediate.dense`, i, h, true);
      linear(`${p}.output.dense`, h, i, true);
      plan.push([`${p}.output.LayerNorm.weight`, one(h)], [`${p}.output.LayerNorm.bias`, zero(h)]);
    }
    linear('pooler.dense', h, h, true);
    return plan;
  }
  const d = c.head_dim ?? Math.floor(h / c.num_attention_heads);
  const kv = c.num_key_value_heads ?? c.num_attention_heads;
  plan.push(['embed_tokens.weight', normal(c.vocab_size, h)]);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `layers.${l}`;
    plan.push([`${p}.input_layernorm.weight`, one(h)]);
    linear(`${p}.self_attn.q_proj`, c.num_attention_heads * d, h, false);
    linear(`${p}.self_attn.k_proj`, kv * d, h, false);
    linear(`${p}.self_attn.v_proj`, kv * d, h, false);
    linear(`${p}.self_attn.o_proj`, h, c.num_attention_heads * d, false);
    plan.push([`${p}.self_attn.q_norm.weight`, one(d)], [`${p}.self_attn.k_norm.weight`, one(d)]);
    plan.push([`${p}.post_attention_layernorm.weight`, one(h)]);
    linear(`${p}.mlp.gate_proj`, i, h, false);
    linear(`${p}.mlp.up_proj`, i, h, false);
    linear(`${p}.mlp.down_proj`, h, i, false);
  }
  plan.push(['norm.weight', one(h)]);
  return plan;
}

/** The weights of a fresh model (float32), drawn after `manualSeed(seed)`; outside every scope: the caller disposes them. */
export function initialWeights(arch: InitArch, config: InitShape, seed: number): Map<string, Tensor> {
  manualSeed(seed);
  const std = config.initializer_range;
  const out = new Map<string, Tensor>();
  noGrad(() => {
    for (const [name, init] of initPlan(arch, config)) {
      let t: Tensor;
      if (init.kind === 'normal') {
        const drawn = randn(init.shape);
        t = drawn.mul(std);
        drawn.dispose();
        if (init.paddingRow !== undefined) {
          const row = t.select(0, init.paddingRow);
          row.zero_();
          row.dispose();
        }
      } else {
        t = init.kind === 'zeros' ? zeros(init.shape) : ones(init.shape);
      }
      out.set(name, keep(t));
    }
  });
  return out;
}
