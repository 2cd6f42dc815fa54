/**
 * Rank-r factorisation of a weight delta Δ [out, in] for PEFT's `svd` adapter combination
 * (REFERENCE §13, PEFT `add_weighted_adapter(combination_type="svd")`: U, S, Vh = svd(Δ);
 * B = U[:, :r]·diag(S[:r]), A = Vh[:r]).
 *
 * The engine has no SVD, and Δ of fused adapters is low-rank (rank ≤ Σ rᵢ) or close to it, so
 * the top-r singular triplets come from subspace iteration (Halko, Martinsson & Tropp 2011,
 * Algorithm 4.4): Y = ΔΩ with k = r + 8 random columns, orthonormalised, refined by four power
 * iterations (QᵀΔ, ΔZ); then the small k×in matrix QᵀΔ is decomposed through the eigenvectors of
 * its k×k Gram matrix (Jacobi, float64). Matrix products run in the engine (float64); the
 * k-column Gram–Schmidt and the k×k eigenproblem in JS. When rank(Δ) ≤ k the result is Δ's
 * exact truncated SVD; the reported error is measured, ‖Δ − BA‖_F / ‖Δ‖_F, not estimated.
 */
import { Tensor, fromTypedArray, keep, randn, tidy } from '../torch/index.js';

/** Orthonormal columns spanning those of `m` [rows, k] (modified Gram–Schmidt, twice); dependent columns become zero. */
function orthonormalColumns(m: Tensor): Tensor {
  const [rows, k] = m.shape as [number, number];
  const a = m.to('float64').contiguous().toTypedArray<'float64'>();
  const col = (j: number) => {
    const c = new Float64Array(rows);
    for (let i = 0; i < rows; i++) c[i] = a[i * k + j]!;
    return c;
  };
  const q: Float64Array[] = [];
  let scale = 0;
  for (let j = 0; j < k; j++) {
    const v = col(j);
    let norm0 = 0;
    for (let i = 0; i < rows; i++) norm0 += v[i]! * v[i]!;
    scale = Math.max(scale, Math.sqrt(norm0));
    for (let pass = 0; pass < 2; pass++) {
      for (const u of q) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += u[i]! * v[i]!;
        for (let i = 0; i < rows; i++) v[i]! -= d * u[i]!;
      }
    }
    let n = 0;
    for (let i = 0; i < rows; i++) n += v[i]! * v[i]!;
    n = Math.sqrt(n);
    if (n <= 1e-12 * Math.max(scale, 1e-300)) v.fill(0);
    else for (let i = 0; i < rows; i++) v[i]! /= n;
    q.push(v);
  }
  const out = new Float64Array(rows * k);
  q.forEach((c, j) => c.forEach((x, i) => (out[i * k + j] = x)));
  return fromTypedArray(out, [rows, k]);
}

/** Eigen-decomposition of a symmetric k×k matrix (cyclic Jacobi): eigenvalues descending, eigenvectors as columns. */
export function symmetricEigen(matrix: Float64Array, k: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(k * k);
  for (let i = 0; i < k; i++) v[i * k + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < k; p++) for (let q = p + 1; q < k; q++) off += a[p * k + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < k; p++) {
      for (let q = p + 1; q < k; q++) {
        const apq = a[p * k + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * k + q]! - a[p * k + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < k; r++) {
          const arp = a[r * k + p]!;
          const arq = a[r * k + q]!;
          a[r * k + p] = c * arp - s * arq;
          a[r * k + q] = s * arp + c * arq;
        }
        for (let r = 0; r < k; r++) {
          const apr = a[p * k + r]!;
          const aqr = a[q * k + r]!;
          a[p * k + r] = c * apr - s * aqr;
          a[q * k + r] = s * apr + c * aqr;
        }
        for (let r = 0; r < k; r++) {
          const vrp = v[r * k + p]!;
          const vrq = v[r * k + q]!;
          v[r * k + p] = c * vrp - s * vrq;
          v[r * k + q] = s * vrp + c * vrq;
        }
      }
    }
  }
  const order = Array.from({ length: k }, (_, i) => i).sort((x, y) => a[y * k + y]! - a[x * k + x]!);
  const values = Float64Array.from(order, (i) => a[i * k + i]!);
  const vectors = new Float64Array(k * k);
  order.forEach((src, dst) => {
    for (let r = 0; r < k; r++) vectors[r * k + dst] = v[r * k + src]!;
  });
  return { values, vectors };
}

export interface LowRank {
  /** [out, r] = U·diag(S) */
  B: Tensor;
  /** [r, in] = Vh */
  A: Tensor;
  /** Singular values found (descending, up to k). */
  singularValues: number[];
  /** ‖Δ − B·A‖_F / ‖Δ‖_F (0 for Δ = 0). */
  relativeError: number;
  /** ‖Δ − B·A‖²_F and ‖Δ‖²_F, for an overall figure across layers. */
  residualSquared: number;
  normSquared: number;
}

/** The rank-r truncated SVD factors of Δ (float32 results; see the module comment). */
export function lowRankFactors(delta: Tensor, r: number, oversample = 8, powerIterations = 4): LowRank {
  const [out, inFeatures] = delta.shape as [number, number];
  const k = Math.min(r + oversample, out, inFeatures);
  const rank = Math.min(r, k);
  const result = tidy(() => {
    const d = delta.to('float64');
    let q = orthonormalColumns(d.matmul(randn([inFeatures, k], { dtype: 'float64' })));
    for (let i = 0; i < powerIterations; i++) {
      const z = orthonormalColumns(d.transpose(0, 1).matmul(q));
      q = orthonormalColumns(d.matmul(z));
    }
    const small = q.transpose(0, 1).matmul(d); // [k, in]
    const gram = small.matmul(small.transpose(0, 1)).contiguous().toTypedArray<'float64'>();
    const { values, vectors } = symmetricEigen(gram, k);
    const sv = Array.from(values, (x) => Math.sqrt(Math.max(x, 0)));
    const uSmall = fromTypedArray(vectors, [k, k]).narrow(1, 0, rank); // [k, rank]
    const u = q.matmul(uSmall); // [out, rank]
    const s = sv.slice(0, rank);
    // Vh rows = uᵢᵀ·small / sᵢ (zero for a zero singular value).
    const inv = fromTypedArray(Float64Array.from(s, (x) => (x > 0 ? 1 / x : 0)), [rank, 1]);
    const vh = uSmall.transpose(0, 1).matmul(small).mul(inv); // [rank, in]
    const B = u.mul(fromTypedArray(Float64Array.from(s), [1, rank]));
    const residual = d.sub(B.matmul(vh)).square().sum().item();
    const norm = d.square().sum().item();
    return { B: keep(B.to('float32').contiguous()), A: keep(vh.to('float32').contiguous()), sv, residual, norm };
  });
  return {
    B: result.B,
    A: result.A,
    singularValues: result.sv,
    relativeError: result.norm > 0 ? Math.sqrt(result.residual / result.norm) : 0,
    residualSquared: result.residual,
    normSquared: result.norm,
  };
}
