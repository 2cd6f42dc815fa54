/**
 * Merging a LoRA adapter into its base model's weights, in memory (PEFT `merge_and_unload`,
 * REFERENCE §7; fixtures/README.md §9):
 *
 *   W' = W + scaling · (B · A)
 *
 * PEFT's `get_delta_weight` computes (B·A)·scaling in the adapter's dtype (float32), and
 * `merge` adds it to the weight in place — PyTorch computes `bf16 += f32` in float32 and rounds
 * the result to the weight's dtype. So here: in float32 (float64 for a float64 model), then cast
 * to the base dtype. Writing the merged model as a folder is src/merge's job (models do no file
 * export).
 */
import { keep, noGrad, tidy, type DType } from '../../torch/index.js';
import type { AdaptableModel } from '../registry.js';
import type { LoraAdapter } from './adapter.js';

/**
 * Adds the adapter's delta to the model's weights (in place) and detaches the adapter from the
 * model if it was attached, so that the delta is not applied twice. The adapter itself is left
 * as it was.
 */
export function mergeAdapter(model: AdaptableModel, adapter: LoraAdapter): void {
  adapter.checkFits(model.linearModules(), model.weights.source);
  if (model.adapter === adapter) model.attachAdapter(undefined);
  noGrad(() => {
    for (const layer of adapter.layers.values()) {
      const name = `${layer.module}.weight`;
      const weight = model.weights.get(name);
      const merged = tidy(() => {
        const compute: DType = weight.dtype === 'float64' ? 'float64' : 'float32';
        const delta = layer.B.to(compute).matmul(layer.A.to(compute)).mul(layer.scaling);
        return weight.to(compute).add(delta).to(weight.dtype).contiguous();
      });
      model.weights.set(name, keep(merged));
    }
  });
}
