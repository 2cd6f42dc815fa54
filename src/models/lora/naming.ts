/**
 * PEFT's tensor names (REFERENCE §7): `base_model.model.<module path>.lora_A.weight`, where the
 * module path is the one in the model PEFT wrapped — PEFT drops the adapter name (`default`) on
 * save. The path depends on the class that was wrapped:
 *
 *   Qwen3ForCausalLM (ms-swift, the fixture adapter)  base_model.model.model.layers.0.self_attn.q_proj…
 *   Qwen3Model (sentence-transformers, AutoModel)     base_model.model.layers.0.self_attn.q_proj…
 *   BertModel (sentence-transformers)                 base_model.model.encoder.layer.0.attention.self.query…
 *   Bert*For* heads                                   base_model.model.bert.encoder.layer.0…
 *
 * embtune's models use the flat names of the base checkpoint (`layers.0.self_attn.q_proj`), so a
 * name maps to a module by stripping `base_model.model.` and then one of the family's known
 * model prefixes. The prefix found is kept, so an adapter saves under the names it was read with.
 */
import type { ModelFamily } from '../registry.js';
import type { JsonValue } from '../../formats/strict_json.js';

/** How PEFT names this adapter's modules: the wrapped class and its prefix before our module paths. */
export interface PeftNaming {
  /** What comes between `base_model.model.` and the module path (`model.` for Qwen3ForCausalLM). */
  modulePrefix: string;
  /** adapter_config.json `auto_mapping` (PEFT writes it when task_type is null). */
  autoMapping: JsonValue;
}

/** Model prefixes PEFT names carry for each family, with the transformers class that has them. */
const KNOWN_PREFIXES: Record<ModelFamily, { prefix: string; baseModelClass?: string; parentLibrary: string }[]> = {
  qwen3: [
    { prefix: 'model.', baseModelClass: 'Qwen3ForCausalLM', parentLibrary: 'transformers.models.qwen3.modeling_qwen3' },
    { prefix: '', baseModelClass: 'Qwen3Model', parentLibrary: 'transformers.models.qwen3.modeling_qwen3' },
  ],
  bert: [
    { prefix: '', baseModelClass: 'BertModel', parentLibrary: 'transformers.models.bert.modeling_bert' },
    { prefix: 'bert.', parentLibrary: 'transformers.models.bert.modeling_bert' },
  ],
};

/** The prefixes a family's adapters may carry, longest first (so `model.` is tried before ''). */
export function knownPrefixes(family: ModelFamily): string[] {
  return KNOWN_PREFIXES[family].map((p) => p.prefix).sort((a, b) => b.length - a.length);
}

/**
 * The naming a new adapter gets. Qwen3: as ms-swift and the fixture adapter (PEFT on
 * Qwen3ForCausalLM, `base_model.model.model.…`), since `embtune train` plays ms-swift's role;
 * pass `modulePrefix: ''` for the names PEFT gives on Qwen3Model (sentence-transformers).
 * BERT: as PEFT on BertModel (sentence-transformers' inner model).
 */
export function defaultNaming(family: ModelFamily, modulePrefix?: string): PeftNaming {
  const known = KNOWN_PREFIXES[family];
  const entry = modulePrefix === undefined ? known[0]! : known.find((k) => k.prefix === modulePrefix && k.baseModelClass);
  if (!entry) {
    const choices = known.filter((k) => k.baseModelClass).map((k) => JSON.stringify(k.prefix));
    throw new Error(`modulePrefix ${JSON.stringify(modulePrefix)} is not a known PEFT naming for ${family} models (one of ${choices.join(', ')})`);
  }
  return {
    modulePrefix: entry.prefix,
    autoMapping: new Map<string, JsonValue>([
      ['base_model_class', entry.baseModelClass!],
      ['parent_library', entry.parentLibrary],
    ]),
  };
}

export type LoraMatrix = 'A' | 'B';

/** `base_model.model.<prefix><module>.lora_A.weight`, as PEFT's save_pretrained writes it. */
export function peftTensorName(naming: PeftNaming, module: string, matrix: LoraMatrix): string {
  return `base_model.model.${naming.modulePrefix}${module}.lora_${matrix}.weight`;
}

const TENSOR_NAME = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight$/;

/**
 * The module path (as PEFT had it, model prefix included) and matrix of a saved LoRA tensor, or
 * undefined for a name that is not one. `base_model.model.` may be absent (transformers'
 * adapter loading accepts that), and an adapter-name segment (`lora_A.default.weight`, what a raw
 * state dict has) is accepted.
 */
export function parsePeftTensorName(name: string): { path: string; matrix: LoraMatrix } | undefined {
  const m = TENSOR_NAME.exec(name);
  return m ? { path: m[1]!, matrix: m[2] as LoraMatrix } : undefined;
}

/** Splits a PEFT module path into a known prefix and one of `modules`, or undefined. */
export function resolveModule(path: string, family: ModelFamily, modules: ReadonlySet<string>): { prefix: string; module: string } | undefined {
  for (const prefix of knownPrefixes(family)) {
    if (path.startsWith(prefix) && modules.has(path.slice(prefix.length))) return { prefix, module: path.slice(prefix.length) };
  }
  return undefined;
}
