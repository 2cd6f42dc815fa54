/**
 * Model fusion, one tensor at a time, in float32 — mergekit's definitions (REFERENCE §13;
 * arcee-ai/mergekit @ a6e4028):
 *
 *   linear       Σ wᵢxᵢ / Σ wᵢ                          `merge_methods/linear.py` (normalize on)
 *   slerp        two tensors, t = 0 → the first          `merge_methods/slerp.py`: flatten; dot of
 *                the unit vectors (no division when a norm ≤ 1e-8); |dot| > 0.9995 → lerp of the
 *                original tensors; else s0·v0 + s1·v1, s0 = sin((1−t)θ)/sin θ, s1 = sin(tθ)/sin θ
 *   multislerp   n tensors                               `merge_methods/multislerp.py`: optional base
 *                subtracted, weights normalised, unit vectors uᵢ = xᵢ/(‖xᵢ‖+ε), mean direction m,
 *                tangents uᵢ − (uᵢ·m)m, exponential map of their weighted sum, scaled by Σ wᵢ‖xᵢ‖;
 *                antipodal inputs whose weighted mean vanishes: linear for two, an error otherwise
 *   ties         task vectors δᵢ = xᵢ − base; magnitude sparsification (keep the top
 *                k = int(density·numel) by |δ|, `sparsify.py` magnitude); weighted wᵢδᵢ; sign election
 *                (majority sign = sign of Σ wᵢδᵢ, ≥ 0 → +1; mask = sign(wᵢδᵢ) == majority);
 *                Σ masked wᵢδᵢ divided by Σ wᵢ·maskᵢ (0 → 1) — `generalized_task_arithmetic.py`,
 *                Yadav et al., NeurIPS 2023 (arXiv 2306.01708)
 *   dare_ties    DARE drop-and-rescale (Bernoulli(density) keep mask, kept entries ÷ density,
 *                `sparsify.py` bernoulli) then the sign election, not normalised (mergekit's default)
 *   dare_linear  DARE then Σ wᵢδᵢ, not normalised (mergekit's default; normalised: ÷ Σ wᵢ, |·| < 1e-8 → 1)
 *                — Yu et al., ICML 2024 (arXiv 2311.03099)
 *   result of the task-vector methods: base + λ·mixed (λ = 1), in float32 (the export casts).
 *
 * Every function takes and returns tensors of one shape; the caller frees what it passed.
 */
import { Tensor, rand, stack, tensor, tidy, where } from '../torch/index.js';

/** mergekit's thresholds. */
export const SLERP_DOT_THRESHOLD = 0.9995;
export const SLERP_EPS = 1e-8;

function f32(t: Tensor): Tensor {
  return t.dtype === 'float32' ? t : t.to('float32');
}

/** (1−t)·a + t·b */
export function lerp(t: number, a: Tensor, b: Tensor): Tensor {
  return tidy(() => f32(a).mul(1 - t).add(f32(b).mul(t)));
}

/** mergekit `slerp(t, v0, v1)` (see the module comment). */
export function slerp(t: number, v0: Tensor, v1: Tensor, dotThreshold = SLERP_DOT_THRESHOLD, eps = SLERP_EPS): Tensor {
  if (v0.shape.join() !== v1.shape.join()) throw new Error(`slerp: shapes [${v0.shape}] and [${v1.shape}] differ`);
  return tidy(() => {
    const a = f32(v0);
    const b = f32(v1);
    const unit = (x: Tensor) => {
      const n = x.norm().item();
      return n > eps ? x.div(n) : x;
    };
    const dot = unit(a).flatten().mul(unit(b).flatten()).sum().item();
    if (Math.abs(dot) > dotThreshold) return lerp(t, a, b);
    const theta0 = Math.acos(dot);
    const sin0 = Math.sin(theta0);
    const s0 = Math.sin(theta0 - theta0 * t) / sin0;
    const s1 = Math.sin(theta0 * t) / sin0;
    return a.mul(s0).add(b.mul(s1));
  });
}

/** Weights normalised to sum 1 (an error when they sum to 0). */
function normalised(weights: readonly number[], what: string): number[] {
  const sum = weights.reduce((s, w) => s + w, 0);
  if (Math.abs(sum) < 1e-12) throw new Error(`${what}: the weights sum to 0`);
  return weights.map((w) => w / sum);
}

/** mergekit `multislerp(tensors, weight, base_tensor)` (see the module comment). */
export function multislerp(tensors: readonly Tensor[], weights: readonly number[], base?: Tensor, eps = SLERP_EPS): Tensor {
  if (tensors.length === 1) return tidy(() => f32(tensors[0]!).clone());
  const w = normalised(weights, 'multislerp');
  return tidy(() => {
    const shape = tensors[0]!.shape;
    const flat = tensors.map((x) => (base ? f32(x).sub(f32(base)) : f32(x)).flatten());
    const norms = flat.map((x) => x.norm().item());
    const units = flat.map((x, i) => x.div(norms[i]! + eps));
    let mean = units.map((u, i) => u.mul(w[i]!)).reduce((s, x) => s.add(x));
    const meanNorm = mean.norm().item();
    if (meanNorm < eps) {
      if (tensors.length === 2) {
        const r = flat[0]!.mul(w[0]!).add(flat[1]!.mul(w[1]!)).reshape(shape);
        return base ? r.add(f32(base)) : r;
      }
      throw new Error('multislerp: the weighted mean of the unit tensors is zero (antipodal tensors with balancing weights); choose other weights');
    }
    mean = mean.div(meanNorm);
    const tangent = units.map((u, i) => u.sub(mean.mul(u.mul(mean).sum().item())).mul(w[i]!)).reduce((s, x) => s.add(x));
    const tNorm = tangent.norm().item() + eps;
    const avgNorm = norms.reduce((s, n, i) => s + n * w[i]!, 0);
    const r = mean.mul(Math.cos(tNorm)).add(tangent.mul(Math.sin(tNorm) / tNorm)).mul(avgNorm).reshape(shape);
    return base ? r.add(f32(base)) : r;
  });
}

/** mergekit `linear`: Σ wᵢxᵢ / Σ wᵢ (normalize on), or Σ wᵢxᵢ. */
export function linear(tensors: readonly Tensor[], weights: readonly number[], normalize = true): Tensor {
  const w = normalize ? normalised(weights, 'linear') : [...weights];
  return tidy(() => tensors.map((x, i) => f32(x).mul(w[i]!)).reduce((s, x) => s.add(x)));
}

/**
 * mergekit `sparsify(method="magnitude")`: keeps the k = int(density·numel) entries of largest
 * |δ|, zeroes the rest. mergekit takes the first k of a descending argsort; here one sort gives
 * the k-th magnitude, every entry above it is kept, and entries equal to it are kept in index
 * order until k are (mergekit's argsort is unstable, so its choice among equal magnitudes is
 * unspecified) — the same set whenever the k-th magnitude is not tied.
 */
export function sparsifyMagnitude(delta: Tensor, density: number): Tensor {
  if (density >= 1) return tidy(() => f32(delta).clone());
  const k = Math.floor(density * delta.numel());
  if (k <= 0) throw new Error(`TIES: density ${density} keeps no entry of a tensor of ${delta.numel()}; raise --density`);
  return tidy(() => {
    const x = f32(delta);
    const magnitude = x.abs().flatten();
    const [sorted] = magnitude.sort(-1, true);
    const threshold = sorted.select(0, k - 1).item();
    const above = magnitude.gt(threshold);
    const need = k - (above.to('int64').sum().item() as number);
    const at = magnitude.eq(threshold);
    const keep = above.logical_or(at.logical_and(at.cumsum(0, 'int64').le(need)));
    return where(keep.reshape(x.shape), x, 0);
  });
}

/**
 * DARE's keep mask: Bernoulli(density) per entry (torch.bernoulli of a tensor full of density),
 * from the engine's generator (seed it with `manualSeed`).
 */
export function dareMask(shape: number[], density: number): Tensor {
  return tidy(() => rand(shape).lt(density));
}

/** mergekit `sparsify(method="random")`: δ·mask, ÷ density when rescaling (DARE). */
export function sparsifyRandom(delta: Tensor, density: number, rescale = true, mask?: Tensor): Tensor {
  if (density >= 1) return tidy(() => f32(delta).clone());
  if (!(density > 0)) throw new Error(`DARE: density must be in (0, 1], got ${density}`);
  return tidy(() => {
    const x = f32(delta);
    const kept = where(mask ?? dareMask(x.shape, density), x, 0);
    return rescale ? kept.div(density) : kept;
  });
}

export type TaskMethod = 'ties' | 'dare_ties' | 'dare_linear' | 'task_arithmetic';

export interface TaskArithmeticOptions {
  method: TaskMethod;
  weights: readonly number[];
  /** Fraction of each task vector kept (TIES: by magnitude; DARE: at random). Default 1. */
  density?: number;
  /** Divide by the (masked) weight sum. Default: mergekit's — ties on, the others off. */
  normalize?: boolean;
  /** Scale of the mixed task vector. Default 1. */
  lambda?: number;
  /** DARE masks, one per tensor (default: drawn with `dareMask`). */
  masks?: readonly Tensor[];
}

/** mergekit's generalized task arithmetic (see the module comment): base + λ·mix(sparsify(xᵢ − base)). */
export function taskArithmetic(base: Tensor, tensors: readonly Tensor[], opts: TaskArithmeticOptions): Tensor {
  const density = opts.density ?? 1;
  const normalize = opts.normalize ?? opts.method === 'ties';
  const lambda = opts.lambda ?? 1;
  const consensus = opts.method === 'ties' || opts.method === 'dare_ties';
  return tidy(() => {
    const b = f32(base);
    const deltas = tensors.map((x, i) => {
      const d = f32(x).sub(b);
      if (opts.method === 'ties') return sparsifyMagnitude(d, density);
      if (opts.method === 'dare_ties' || opts.method === 'dare_linear') return sparsifyRandom(d, density, true, opts.masks?.[i]);
      return d;
    });
    const weighted = stack(deltas.map((d, i) => d.mul(opts.weights[i]!)));
    const w = tensor([...opts.weights]).reshape([opts.weights.length, ...b.shape.map(() => 1)]);
    let mixed: Tensor;
    let divisor: Tensor;
    if (consensus) {
      const majority = weighted.sum(0).ge(0).to('float32').mul(2).sub(1);
      const mask = weighted.sign().eq(majority).to('float32');
      mixed = weighted.mul(mask).sum(0);
      const sum = w.mul(mask).sum(0);
      divisor = where(sum.eq(0), 1, sum);
    } else {
      mixed = weighted.sum(0);
      const sum = opts.weights.reduce((s, x) => s + x, 0);
      divisor = tensor(Math.abs(sum) < 1e-8 ? 1 : sum);
    }
    if (normalize) mixed = mixed.div(divisor);
    return b.add(mixed.mul(lambda));
  });
}
