/**
 * Fusing LoRA adapters of one base (`embtune fuse --adapters A B … --model BASE`). Each adapter i
 * is the merged model W + Δᵢ with Δᵢ = scalingᵢ·BᵢAᵢ (REFERENCE §7, §13); the fused model is the
 * chosen method applied to those merged weights module by module (fuse_method.ts) — so fusing
 * adapters equals fusing the merged models, while only the adapted modules are computed (the
 * others are W in every input, which every method returns unchanged). For `linear` the fused
 * delta is Σ cᵢ·scalingᵢ·BᵢAᵢ with cᵢ = wᵢ/Σw.
 *
 * Outputs:
 *   (default)           the fused model, merged into the base: the complete, checked folder of a merge
 *   --as-adapter cat    PEFT `add_weighted_adapter(combination_type="cat")`: A rows cᵢ·scalingᵢ·Aᵢ,
 *                       B columns Bᵢ, rank Σ rᵢ, scaling 1 (lora_alpha = r): the exact fused delta
 *                       (linear only); a module an adapter lacks gets zero rows/columns there
 *   --as-adapter svd    PEFT `svd`: the fused delta's rank-r truncated SVD (low_rank.ts),
 *                       B = U·diag(S), A = Vh, scaling 1; the truncation error is reported
 *   --as-adapter linear PEFT's own `linear` combination: A = Σ sign(wᵢsᵢ)·√|wᵢsᵢ|·Aᵢ,
 *                       B = Σ √|wᵢsᵢ|·Bᵢ (raw weights, equal ranks) — NOT the weighted sum of the
 *                       deltas (it adds cross terms BᵢAⱼ); offered under PEFT's name only, its
 *                       error against Σ wᵢsᵢBᵢAᵢ reported
 * An adapter output is checked by reloading it from disk onto the base and comparing with the
 * fused model: exact for cat (the parity tolerance applies), approximate for svd and linear
 * (reported, not failed).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Embedder } from '../embed/index.js';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { saveSafetensors } from '../formats/safetensors_write.js';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, LoraAdapter, adapterConfigJson, peftTensorName, type LoraConfig } from '../models/lora/index.js';
import { cat, keep, manualSeed, noGrad, tidy, zeros, type Tensor } from '../torch/index.js';
import { saveModelFolder } from './export.js';
import { checkFuseOptions, describeFusion, fuseTensor, type FuseMethodOptions } from './fuse_method.js';
import type { FuseOutputOptions, FuseResult } from './fuse_models.js';
import { lowRankFactors } from './low_rank.js';
import { modelCard } from './model_card.js';
import { PARITY_TOLERANCE, compareVectors, embedFolder, embedSamples, parityReport, type ParityReport } from './parity.js';
import { builtInSamples } from './samples.js';

export type AdapterOutput = 'cat' | 'svd' | 'linear';

export interface FuseAdaptersOptions extends FuseMethodOptions, FuseOutputOptions {
  /** The base model folder the adapters were trained on. */
  base: string;
  baseName?: string;
  /** Adapter folders. */
  adapters: string[];
  /** Write an adapter instead of the merged model. */
  asAdapter?: AdapterOutput;
  /** Rank of the `svd` adapter (default: the largest input rank, as PEFT). */
  rank?: number;
}

export interface FuseAdaptersResult extends FuseResult {
  /** svd / linear adapters: ‖Δ − B·A‖_F / ‖Δ‖_F over all modules, and the worst module's. */
  approximation?: { relativeError: number; worstModule: string; worstError: number };
  /** Rank of the written adapter. */
  rank?: number;
}

interface ModuleInputs {
  module: string;
  /** Per adapter: its layer, or undefined when it does not adapt this module. */
  layers: ({ A: Tensor; B: Tensor; scaling: number; r: number } | undefined)[];
}

function fusedDelta(opts: FuseMethodOptions, weights: readonly number[], W: Tensor, m: ModuleInputs): Tensor {
  return tidy(() => {
    const merged = m.layers.map((l) => (l ? W.add(l.B.to('float32').matmul(l.A.to('float32')).mul(l.scaling)) : W));
    return fuseTensor(opts, weights, merged, W).sub(W);
  });
}

/** The adapter config of a fused adapter of rank `r`, scaling 1, targeting exactly `modules` (of the model's `allModules`). */
function fusedConfig(first: LoraAdapter, modules: string[], r: number, allModules: readonly string[]): LoraConfig {
  const prefix = first.naming.modulePrefix;
  const names = [...new Set(modules.map((m) => m.slice(m.lastIndexOf('.') + 1)))];
  // A list of names would also select modules no input adapted (fewer layers, layers_to_transform):
  // then the exact paths, as PEFT's full-match regular expression.
  const escaped = modules.map((m) => `${prefix}${m}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return {
    ...first.config,
    r,
    lora_alpha: r,
    use_rslora: false,
    rank_pattern: {},
    alpha_pattern: {},
    exclude_modules: null,
    layers_to_transform: null,
    layers_pattern: null,
    target_modules: allModules.filter((m) => names.includes(m.slice(m.lastIndexOf('.') + 1))).length === modules.length ? names : escaped.join('|'),
  };
}

function writeAdapter(folder: string, first: LoraAdapter, factors: Map<string, { A: Tensor; B: Tensor }>, r: number, allModules: readonly string[]): void {
  mkdirSync(folder, { recursive: true });
  const tensors = new Map<string, Tensor>();
  for (const [module, { A, B }] of factors) {
    tensors.set(peftTensorName(first.naming, module, 'A'), A);
    tensors.set(peftTensorName(first.naming, module, 'B'), B);
  }
  saveSafetensors(join(folder, ADAPTER_WEIGHTS_NAME), tensors, { format: 'pt' });
  const config = fusedConfig(first, [...factors.keys()], r, allModules);
  const text = Buffer.from(adapterConfigJson(config, first.naming.autoMapping), 'utf8');
  writeFileAtomic(join(folder, ADAPTER_CONFIG_NAME), (write) => write(text));
}

/** PEFT `cat`: the exact fused delta of a linear fusion as one adapter of rank Σ rᵢ. */
function catFactors(m: ModuleInputs, coefficients: readonly number[], ranks: readonly number[], shape: [number, number]): { A: Tensor; B: Tensor } {
  return tidy(() => {
    const [out, inFeatures] = shape;
    const As = m.layers.map((l, i) => (l ? l.A.to('float32').mul(coefficients[i]! * l.scaling) : zeros([ranks[i]!, inFeatures])));
    const Bs = m.layers.map((l, i) => (l ? l.B.to('float32') : zeros([out, ranks[i]!])));
    return { A: cat(As, 0).contiguous(), B: cat(Bs, 1).contiguous() };
  });
}

/** PEFT's own `linear` combination (see the module comment). */
function peftLinearFactors(m: ModuleInputs, weights: readonly number[]): { A: Tensor; B: Tensor } {
  return tidy(() => {
    const As: Tensor[] = [];
    const Bs: Tensor[] = [];
    m.layers.forEach((l, i) => {
      if (!l) return;
      const ws = weights[i]! * l.scaling;
      As.push(l.A.to('float32').mul(Math.sign(ws) * Math.sqrt(Math.abs(ws))));
      Bs.push(l.B.to('float32').mul(Math.sqrt(Math.abs(ws))));
    });
    return { A: As.reduce((s, x) => s.add(x)).contiguous(), B: Bs.reduce((s, x) => s.add(x)).contiguous() };
  });
}

/** Fuses adapters (see the module comment). */
export async function fuseAdapters(opts: FuseAdaptersOptions): Promise<FuseAdaptersResult> {
  const say = opts.say ?? (() => {});
  const dtype = opts.dtype ?? 'float32';
  const weights = checkFuseOptions(opts, opts.adapters.length, true);
  if (opts.asAdapter === 'cat' && opts.method !== 'linear') throw new Error(`--as-adapter cat is exact only for --method linear (a weighted sum of low-rank deltas); for ${opts.method} use --as-adapter svd --rank r, or write the merged model`);
  if (opts.asAdapter === 'linear' && opts.method !== 'linear') throw new Error('--as-adapter linear is PEFT\'s linear combination; it goes with --method linear');
  if (opts.rank !== undefined && opts.asAdapter !== 'svd') throw new Error('--rank is the rank of --as-adapter svd');
  const description = `${describeFusion(opts, weights, opts.adapters.length)} over LoRA adapters${opts.asAdapter ? `, written as a PEFT '${opts.asAdapter}' adapter` : ', merged into the base'}`;
  const samples = opts.samples ?? builtInSamples();
  const embedder = await Embedder.load(opts.base, { dtype: 'float32' });
  const adapters: LoraAdapter[] = [];
  const made = new Map<string, { A: Tensor; B: Tensor }>();
  let approximation: FuseAdaptersResult['approximation'];
  let rank: number | undefined;
  let reference: Float32Array[];
  let files: string[] = [];
  let modelModules: string[] = [];
  let adaptedModules = 0;
  let info: Embedder['info'];
  try {
    for (const folder of opts.adapters) adapters.push(LoraAdapter.load(folder, embedder.encoder));
    const ranks = adapters.map((a) => Math.max(...[...a.layers.values()].map((l) => l.r)));
    if (opts.asAdapter === 'linear' && adapters.some((a) => [...a.layers.values()].some((l) => l.r !== ranks[0]))) {
      throw new Error(`PEFT's linear combination needs adapters of one rank; these have r ${ranks.join(', ')} (use --as-adapter cat or svd)`);
    }
    modelModules = embedder.encoder.linearModules().map((m) => m.name);
    info = embedder.info;
    const modules: ModuleInputs[] = modelModules
      .map((module) => ({ module, layers: adapters.map((a) => a.layers.get(module)) }))
      .filter((m) => m.layers.some((l) => l !== undefined));
    adaptedModules = modules.length;
    if (opts.method === 'dare_ties' || opts.method === 'dare_linear') manualSeed(opts.seed ?? 42);
    say(`fusing ${adapters.length} adapters (${description}), ${modules.length} adapted modules`);
    const sum = weights.reduce((s, w) => s + w, 0);
    const coefficients = weights.map((w) => ((opts.normalize ?? true) ? w / sum : w));
    let residual = 0;
    let norm = 0;
    let worst = { module: '', error: -1 };
    noGrad(() => {
      for (const [i, m] of modules.entries()) {
        opts.onProgress?.(i, modules.length);
        const name = `${m.module}.weight`;
        const W = embedder.encoder.weights.get(name);
        const delta = fusedDelta(opts, weights, W, m);
        if (opts.asAdapter === 'cat') {
          made.set(m.module, catFactors(m, coefficients, adapters.map((a) => a.layers.get(m.module)?.r ?? ranks[adapters.indexOf(a)]!), W.shape as [number, number]));
        } else if (opts.asAdapter === 'svd') {
          rank = opts.rank ?? Math.max(...ranks);
          const f = lowRankFactors(delta, rank);
          made.set(m.module, { A: f.A, B: f.B });
          residual += f.residualSquared;
          norm += f.normSquared;
          if (f.relativeError > worst.error) worst = { module: m.module, error: f.relativeError };
        } else if (opts.asAdapter === 'linear') {
          const f = peftLinearFactors(m, weights);
          made.set(m.module, f);
          // PEFT's intended delta: Σ wᵢ·sᵢ·BᵢAᵢ (raw weights).
          const [res, nrm] = tidy(() => {
            const intended = m.layers.map((l, i) => (l ? l.B.to('float32').matmul(l.A.to('float32')).mul(weights[i]! * l.scaling) : W.mul(0))).reduce((s, x) => s.add(x));
            return [intended.sub(f.B.matmul(f.A)).square().sum().item(), intended.square().sum().item()];
          });
          residual += res;
          norm += nrm;
          const err = nrm > 0 ? Math.sqrt(res / nrm) : 0;
          if (err > worst.error) worst = { module: m.module, error: err };
        }
        embedder.encoder.weights.set(name, keep(tidy(() => W.add(delta).contiguous())));
        delta.dispose();
      }
      opts.onProgress?.(modules.length, modules.length);
    });
    if (opts.asAdapter === 'svd' || opts.asAdapter === 'linear') approximation = { relativeError: norm > 0 ? Math.sqrt(residual / norm) : 0, worstModule: worst.module, worstError: worst.error };
    if (opts.asAdapter === 'cat') rank = adapters.reduce((s, _a, i) => s + ranks[i]!, 0);
    if (opts.asAdapter === 'linear') rank = ranks[0];
    reference = embedSamples(embedder, samples.texts);
    if (opts.asAdapter) {
      writeAdapter(opts.output, adapters[0]!, made, rank!, modelModules);
      files = [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME];
    } else {
      say(`writing ${opts.output} (${dtype})`);
      files = saveModelFolder(embedder.encoder, opts.base, opts.output, { dtype, ...(opts.maxShardBytes === undefined ? {} : { maxShardBytes: opts.maxShardBytes }) }).files;
    }
  } finally {
    for (const a of adapters) a.dispose();
    for (const f of made.values()) [f.A, f.B].forEach((t) => t.dispose());
    embedder.dispose();
  }
  say(`reloading ${opts.output} from disk to verify it`);
  let parity: ParityReport;
  if (opts.asAdapter) {
    const onBase = await Embedder.load(opts.base, { dtype: 'float32', adapter: opts.output });
    try {
      const diff = compareVectors(embedSamples(onBase, samples.texts), reference);
      const exact = opts.asAdapter === 'cat';
      parity = parityReport(diff, samples, exact ? opts.tolerance ?? PARITY_TOLERANCE.float32 : Number.POSITIVE_INFINITY, 'float32');
      if (!exact) parity = { ...parity, line: parity.line.replace(/ — ok .*$/, ` — approximate (${opts.asAdapter} adapter, truncation error ${approximation!.relativeError.toExponential(2)})`) };
    } finally {
      onBase.dispose();
    }
  } else {
    const written = await embedFolder(opts.output, samples.texts, info.pooling);
    parity = parityReport(compareVectors(written, reference), samples, opts.tolerance ?? PARITY_TOLERANCE[dtype], dtype);
    const card = modelCard({ base: opts.baseName ?? opts.base, method: `fusion of the LoRA adapters ${opts.adapters.map((a) => `\`${a}\``).join(', ')}: ${description}, saved as ${dtype}`, parity: parity.line, queryPrompt: info.prompts.query });
    const bytes = Buffer.from(card, 'utf8');
    writeFileAtomic(join(opts.output, 'README.md'), (write) => write(bytes));
    files.push('README.md');
  }
  return { output: opts.output, files, parity, description, tensors: adaptedModules, ...(approximation ? { approximation } : {}), ...(rank !== undefined ? { rank } : {}) };
}
