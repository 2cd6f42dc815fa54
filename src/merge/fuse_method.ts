/**
 * The fusion methods of `embtune fuse` over one tensor position: `--method` and its parameters
 * mapped onto mergekit's definitions (fuse_tensors.ts, REFERENCE §13).
 *   linear       Σ wᵢxᵢ / Σ wᵢ (weights default equal)
 *   slerp        two models: slerp at t (default 0.5, or w₁/(w₀+w₁) from --weights), t = 0 → the
 *                first; more: multislerp with the weights (task vectors from --base if given)
 *   ties, dare_ties, dare_linear   task arithmetic over xᵢ − base (--base required)
 */
import type { Tensor } from '../torch/index.js';
import { linear, multislerp, slerp, taskArithmetic } from './fuse_tensors.js';

export const FUSE_METHODS = ['linear', 'slerp', 'ties', 'dare_ties', 'dare_linear'] as const;
export type FuseMethod = (typeof FUSE_METHODS)[number];

export interface FuseMethodOptions {
  method: FuseMethod;
  /** One per model (default: equal). */
  weights?: number[];
  /** SLERP's interpolation factor for two models (0 → the first model). */
  t?: number;
  /** TIES/DARE: fraction of each task vector kept (default 1, mergekit's default). */
  density?: number;
  /** Divide by the weight sum (default: mergekit's per method). */
  normalize?: boolean;
  /** Scale of the mixed task vector (task-vector methods; default 1). */
  lambda?: number;
}

export function needsBase(method: FuseMethod): boolean {
  return method === 'ties' || method === 'dare_ties' || method === 'dare_linear';
}

/** Checks the options against the number of inputs; returns the weights to use. */
export function checkFuseOptions(opts: FuseMethodOptions, count: number, hasBase: boolean): number[] {
  if (!(FUSE_METHODS as readonly string[]).includes(opts.method)) throw new Error(`unknown fusion method '${opts.method}' (choose ${FUSE_METHODS.join(', ')})`);
  if (count < 2) throw new Error(`fusion needs two or more inputs, got ${count}`);
  const weights = opts.weights ?? new Array<number>(count).fill(1);
  if (weights.length !== count) throw new Error(`--weights has ${weights.length} values for ${count} inputs; give one per input`);
  if (weights.some((w) => !Number.isFinite(w))) throw new Error(`--weights must be numbers, got ${weights.join(' ')}`);
  if (opts.t !== undefined) {
    if (opts.method !== 'slerp') throw new Error('--t is SLERP\'s parameter; use --weights with other methods');
    if (count !== 2) throw new Error(`--t interpolates between two inputs; with ${count} use --weights (multi-model SLERP)`);
    if (!(opts.t >= 0 && opts.t <= 1)) throw new Error(`--t must be in [0, 1], got ${opts.t}`);
  }
  if (opts.density !== undefined && !(opts.density > 0 && opts.density <= 1)) throw new Error(`--density must be in (0, 1], got ${opts.density}`);
  if (needsBase(opts.method) && !hasBase) throw new Error(`--method ${opts.method} works on task vectors (model − base): give --base, the model the inputs were fine-tuned from`);
  return weights;
}

/** SLERP's t for two inputs: --t, else from the weights (w₁/(w₀+w₁)), else 0.5. */
export function slerpT(opts: FuseMethodOptions, weights: readonly number[]): number {
  if (opts.t !== undefined) return opts.t;
  if (opts.weights) return weights[1]! / (weights[0]! + weights[1]!);
  return 0.5;
}

/** One fused tensor (float32) from one tensor per input (and the base's, for task vectors). */
export function fuseTensor(opts: FuseMethodOptions, weights: readonly number[], tensors: readonly Tensor[], base?: Tensor): Tensor {
  switch (opts.method) {
    case 'linear':
      return linear(tensors, weights, opts.normalize ?? true);
    case 'slerp':
      return tensors.length === 2 ? slerp(slerpT(opts, weights), tensors[0]!, tensors[1]!) : multislerp(tensors, weights, base);
    default:
      return taskArithmetic(base!, tensors, {
        method: opts.method,
        weights,
        ...(opts.density === undefined ? {} : { density: opts.density }),
        ...(opts.normalize === undefined ? {} : { normalize: opts.normalize }),
        ...(opts.lambda === undefined ? {} : { lambda: opts.lambda }),
      });
  }
}

/** One line naming the method and its parameters, for the log and the model card. */
export function describeFusion(opts: FuseMethodOptions, weights: readonly number[], count: number): string {
  const parts = [opts.method === 'slerp' && count > 2 ? 'multi-model SLERP (mergekit multislerp)' : opts.method];
  if (opts.method === 'slerp' && count === 2) parts.push(`t=${slerpT(opts, weights)}`);
  else parts.push(`weights ${weights.join(' ')}`);
  if (opts.density !== undefined) parts.push(`density ${opts.density}`);
  if (opts.lambda !== undefined) parts.push(`lambda ${opts.lambda}`);
  if (opts.normalize !== undefined) parts.push(`normalize ${opts.normalize}`);
  return parts.join(', ');
}
