/**
 * Whether a LoRA adapter changes its base model at all — the check behind users' most common
 * complaint after merging ("the model gives the same results as before fine-tuning": ms-swift
 * #5450, #6919; Qwen3-Embedding #70, #167). The usual causes, each named when found:
 *   - lora_B all zero: an adapter saved before any training step (PEFT initialises B to 0,
 *     REFERENCE §7), or trained with a learning rate too small to move it;
 *   - scaling 0 (lora_alpha 0);
 *   - target modules that match no layer (the loader already refuses those with an error);
 *   - a delta too small to survive rounding the merged weights to bfloat16.
 */
import { noGrad, tidy } from '../torch/index.js';
import type { LoraAdapter } from '../models/lora/index.js';

export interface AdapterEffect {
  /** Adapted layers. */
  layers: number;
  /** Layers whose delta scaling·B·A is exactly zero, and why (first few). */
  zeroLayers: number;
  zeroReasons: string[];
  /** max |scaling·B·A| over every layer (float32). */
  maxDelta: number;
}

/** The size of every layer's delta (computed layer by layer, nothing kept). */
export function adapterEffect(adapter: LoraAdapter): AdapterEffect {
  let zeroLayers = 0;
  let maxDelta = 0;
  const reasons = new Map<string, number>();
  const note = (why: string) => reasons.set(why, (reasons.get(why) ?? 0) + 1);
  noGrad(() => {
    for (const layer of adapter.layers.values()) {
      const { bZero, aZero, delta } = tidy(() => ({
        bZero: layer.B.abs().max().item() === 0,
        aZero: layer.A.abs().max().item() === 0,
        delta: layer.B.to('float32').matmul(layer.A.to('float32')).mul(layer.scaling).abs().max().item(),
      }));
      if (delta === 0) {
        zeroLayers++;
        if (layer.scaling === 0) note('scaling 0 (lora_alpha 0)');
        else if (bZero) note('lora_B all zero (an untrained adapter: PEFT initialises B to 0)');
        else if (aZero) note('lora_A all zero');
        else note('B·A is zero');
      }
      if (delta > maxDelta) maxDelta = delta;
    }
  });
  return { layers: adapter.layers.size, zeroLayers, zeroReasons: [...reasons].map(([why, n]) => `${n} layer(s): ${why}`), maxDelta };
}

/**
 * The loud warning for an adapter that does nothing, or undefined when it does something.
 * `embeddingDiff` is max |Δ| between the base's and the merged model's unit vectors;
 * `changedWeights` how many adapted weights differ from the base's in the saved dtype.
 */
export function noEffectWarning(effect: AdapterEffect, embeddingDiff: number, changedWeights: number, threshold: number): string | undefined {
  const allZero = effect.layers > 0 && effect.zeroLayers === effect.layers;
  if (!allZero && changedWeights > 0 && embeddingDiff > threshold) return undefined;
  const why: string[] = [];
  if (allZero) why.push(`every one of the ${effect.layers} adapted layers has a zero delta — ${effect.zeroReasons.join('; ')}`);
  else if (effect.zeroLayers > 0) why.push(`${effect.zeroLayers} of ${effect.layers} layers have a zero delta (${effect.zeroReasons.join('; ')})`);
  if (!allZero && changedWeights === 0) why.push(`the deltas (largest |scaling·B·A| ${effect.maxDelta.toExponential(2)}) vanish when the merged weights are rounded to the saved dtype; save with --dtype float32`);
  if (why.length === 0) why.push(`the largest weight change is ${effect.maxDelta.toExponential(2)}, too small to move any embedding`);
  return [
    `WARNING: THE ADAPTER CHANGES NOTHING. The merged model gives the base model's embeddings (max |Δ| ${embeddingDiff.toExponential(2)} against the base).`,
    ...why.map((w) => `  - ${w}`),
    '  Check that this is the trained checkpoint (not checkpoint-0 or a copy saved before training), its learning rate and loss curve, and that target_modules names the model\'s layers.',
  ].join('\n');
}
