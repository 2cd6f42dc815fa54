/**
 * LoRA adapters with PEFT's semantics and file format (REFERENCE §7): create, load, save, attach
 * to a Qwen3 or BERT model (`model.attachAdapter`), train (A and B are the trainable leaves),
 * merge into the weights (exporting the merged folder is src/merge's).
 */
export { LoraAdapter, adapterDtypeFor, kaimingUniformBound, type CreateAdapterOptions, type LoraLayer } from './adapter.js';
export {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  AdapterConfigError,
  SWIFT_LORA_DEFAULTS,
  adapterConfigJson,
  loraConfig,
  loraScaling,
  readAdapterConfig,
  type AdapterConfigFile,
  type InitLoraWeights,
  type LoraConfig,
} from './config.js';
export { defaultNaming, parsePeftTensorName, peftTensorName, type LoraMatrix, type PeftNaming } from './naming.js';
export { mergeAdapter } from './merge.js';
export { dumpsPython, pyFloat, pythonJsonFloat } from '../../formats/python_json.js';
