/**
 * The proof that an exported folder is the model it should be: it is reloaded from disk and
 * embeds the sample texts; its vectors are compared with the reference (base + adapter, unmerged,
 * for a merge; the in-memory fused weights for a fusion):
 *
 *   parity: max |Δ| 3.1e-7, min cosine 1.000000 over 11 texts (…) — ok (float32 tolerance 1e-4)
 *
 * Vectors are L2-normalised on both sides (the exported folder's similarity is cosine), so |Δ|
 * is on unit vectors. Tolerances: float32 1e-4 (the issue's; observed ≈ 1e-7). bfloat16 weights
 * are the float32 merge rounded once, so their error is the rounding of every weight: measured on
 * the tiny fixtures (test/merge/merge.test.ts) and bounded at 3e-2 (max |Δ|), see the report.
 *
 * The same texts through the base model alone tell whether the adapter changed anything —
 * users' most common complaint after merging is "same results as before fine-tuning".
 */
import { Embedder, type TextKind } from '../embed/index.js';
import type { SampleText, Samples } from './samples.js';
import type { SaveDType } from './export.js';

/** Default max |Δ| of unit vectors, by saved dtype. */
export const PARITY_TOLERANCE: Record<SaveDType, number> = { float32: 1e-4, bfloat16: 3e-2, float16: 5e-3 };

/** Below this max |Δ| between the base's and the merged model's unit vectors, the adapter did nothing. */
export const NO_EFFECT_THRESHOLD = 1e-6;

export interface VectorDiff {
  maxAbsDiff: number;
  minCosine: number;
}

export interface ParityReport extends VectorDiff {
  texts: number;
  source: string;
  tolerance: number;
  ok: boolean;
  /** The printed line. */
  line: string;
}

/** Unit vectors of the samples, in order: queries with the query prompt, documents without. */
export function embedSamples(embedder: Embedder, samples: readonly SampleText[]): Float32Array[] {
  const out = new Array<Float32Array>(samples.length);
  for (const kind of ['query', 'document'] as TextKind[]) {
    const idx = samples.map((s, i) => (s.kind === kind ? i : -1)).filter((i) => i >= 0);
    if (idx.length === 0) continue;
    const vectors = embedder.embed(idx.map((i) => samples[i]!.text), { kind, normalize: true });
    idx.forEach((i, k) => (out[i] = vectors[k]!));
  }
  return out;
}

/** max |aᵢⱼ − bᵢⱼ| and min cosine(aᵢ, bᵢ) over rows (cosines in float64). */
export function compareVectors(a: readonly Float32Array[], b: readonly Float32Array[]): VectorDiff {
  if (a.length !== b.length) throw new Error(`compareVectors: ${a.length} vs ${b.length} vectors`);
  let maxAbsDiff = 0;
  let minCosine = 1;
  a.forEach((x, i) => {
    const y = b[i]!;
    if (x.length !== y.length) throw new Error(`compareVectors: vector ${i} has ${x.length} vs ${y.length} components`);
    let dot = 0;
    let nx = 0;
    let ny = 0;
    for (let j = 0; j < x.length; j++) {
      const d = Math.abs(x[j]! - y[j]!);
      if (!(d <= maxAbsDiff)) maxAbsDiff = d;
      dot += x[j]! * y[j]!;
      nx += x[j]! * x[j]!;
      ny += y[j]! * y[j]!;
    }
    const cos = dot / Math.sqrt(nx * ny);
    if (!(cos >= minCosine)) minCosine = cos;
  });
  return { maxAbsDiff, minCosine };
}

export function formatDiff(d: VectorDiff): string {
  return `max |Δ| ${d.maxAbsDiff.toExponential(2)}, min cosine ${d.minCosine.toFixed(6)}`;
}

export function parityReport(diff: VectorDiff, samples: Samples, tolerance: number, dtype: SaveDType): ParityReport {
  const ok = diff.maxAbsDiff <= tolerance && Number.isFinite(diff.minCosine);
  const verdict = ok ? `ok (${dtype} tolerance ${tolerance.toExponential(0)})` : `FAILED: above the ${dtype} tolerance ${tolerance.toExponential(0)}`;
  const line = `parity: ${formatDiff(diff)} over ${samples.texts.length} texts (${samples.source}) — ${verdict}`;
  return { ...diff, texts: samples.texts.length, source: samples.source, tolerance, ok, line };
}

/** Loads `folder` (float32, on `device`) and embeds the samples; the folder's pooling must be `expectedPooling`. */
export async function embedFolder(folder: string, samples: readonly SampleText[], expectedPooling: string, device: string = 'cpu'): Promise<Float32Array[]> {
  const embedder = await Embedder.load(folder, { dtype: 'float32', device });
  try {
    if (embedder.info.pooling !== expectedPooling) {
      throw new Error(`${folder}: the written folder loads with ${embedder.info.pooling} pooling, the model uses ${expectedPooling}; its sentence-transformers files are wrong`);
    }
    return embedSamples(embedder, samples);
  } finally {
    embedder.dispose();
  }
}
