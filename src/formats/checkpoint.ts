/**
 * Checkpoints in Hugging Face's safetensors layout: one `model.safetensors`, or shards
 * `model-00001-of-0000N.safetensors` listed by `model.safetensors.index.json`
 * (`{"metadata": {"total_size": …}, "weight_map": {tensor name: shard file}}`).
 *
 * Reading is lazy: `SafetensorsCheckpoint` reads the index, opens a shard (its header only) the
 * first time a tensor in it is asked for, and reads one tensor at a time — a sharded 8B model is
 * never in memory twice. The folder is resolved as transformers 4.51's `from_pretrained` does:
 * `model.safetensors` first, then the index.
 *
 * Writing follows transformers' `save_pretrained` (4.51.3) with huggingface_hub's
 * `split_state_dict_into_shards_factory` (0.30.2): tensors are taken in the caller's order; one
 * larger than `maxShardBytes` gets a shard of its own; otherwise a tensor that would push the
 * current shard over the limit starts a new shard. One shard is written as `model.safetensors`
 * without an index; several as `model-{i:05d}-of-{n:05d}.safetensors` with the index written last,
 * as `json.dumps(index, indent=2, sort_keys=True) + "\n"` (Python's default ensure_ascii).
 * Every shard carries `{"format": "pt"}` metadata, as transformers writes.
 *
 * Errors name the index file, and the shard where one is involved.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { Tensor } from '../torch/index.js';
import { writeFileAtomic } from './atomic_write.js';
import { SafetensorsError, SafetensorsFile, type SafetensorsEntry } from './safetensors.js';
import { type SafetensorsValue, type TensorDict, describeValue, saveSafetensors } from './safetensors_write.js';
import { type JsonObject, type JsonValue, isJsonObject, parseStrictJson } from './strict_json.js';
import { dumpsPython } from './python_json.js';

export const SAFE_WEIGHTS_NAME = 'model.safetensors';
export const SAFE_WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';
/** huggingface_hub's default `max_shard_size` ("5GB" = 5·10⁹ bytes). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** A safetensors checkpoint folder (or a single file), read lazily. */
export class SafetensorsCheckpoint {
  private readonly opened = new Map<string, SafetensorsFile>();

  private constructor(
    /** The index file, or the single safetensors file: what error messages name. */
    readonly source: string,
    readonly folder: string,
    /** Tensor name → shard file name (relative to the folder), in index order. */
    private readonly weightMap: Map<string, string>,
    /** The index's `metadata` object as written (empty for a single file). */
    readonly indexMetadata: ReadonlyMap<string, JsonValue>,
  ) {}

  /** Opens `folder/model.safetensors` if it exists, else `folder/model.safetensors.index.json`. */
  static open(folder: string): SafetensorsCheckpoint {
    const single = join(folder, SAFE_WEIGHTS_NAME);
    if (existsSync(single)) return SafetensorsCheckpoint.openFile(single);
    const index = join(folder, SAFE_WEIGHTS_INDEX_NAME);
    if (existsSync(index)) return SafetensorsCheckpoint.openIndex(index);
    throw new SafetensorsError(folder, `no ${SAFE_WEIGHTS_NAME} and no ${SAFE_WEIGHTS_INDEX_NAME}`);
  }

  /** A single safetensors file seen as a one-shard checkpoint. */
  static openFile(path: string): SafetensorsCheckpoint {
    const file = SafetensorsFile.open(path);
    const folder = dirname(path);
    const name = basename(path);
    const checkpoint = new SafetensorsCheckpoint(path, folder, new Map(file.keys().map((k) => [k, name])), new Map());
    checkpoint.opened.set(name, file);
    return checkpoint;
  }

  /** A sharded checkpoint from its index; no shard is opened yet. */
  static openIndex(indexPath: string): SafetensorsCheckpoint {
    const fail = (message: string, cause?: unknown): never => {
      throw new SafetensorsError(indexPath, message, cause === undefined ? undefined : { cause });
    };
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(indexPath));
    } catch (err) {
      return fail(`cannot read the index (${(err as Error).message})`, err);
    }
    let json: JsonValue;
    try {
      json = parseStrictJson(text);
    } catch (err) {
      return fail(`the index is not valid JSON: ${(err as Error).message}`, err);
    }
    if (!isJsonObject(json)) return fail('the index is not a JSON object');
    const rawMap = json.get('weight_map');
    if (!isJsonObject(rawMap)) return fail('the index has no "weight_map" object');
    const metadata = json.get('metadata');
    if (metadata !== undefined && metadata !== null && !isJsonObject(metadata)) return fail('"metadata" must be an object');
    const weightMap = new Map<string, string>();
    for (const [name, file] of rawMap) {
      if (typeof file !== 'string') return fail(`weight_map[${JSON.stringify(name)}] must be a file name, not ${JSON.stringify(file)}`);
      // The index comes with downloaded weights: it must not point outside its folder.
      const norm = normalize(file);
      if (file === '' || isAbsolute(file) || norm === '..' || norm.startsWith(`..${sep}`)) {
        return fail(`weight_map[${JSON.stringify(name)}] = ${JSON.stringify(file)} is not a file inside the checkpoint folder`);
      }
      weightMap.set(name, file);
    }
    return new SafetensorsCheckpoint(indexPath, dirname(indexPath), weightMap, isJsonObject(metadata) ? metadata : new Map());
  }

  /** Tensor names, in index order. */
  keys(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** `metadata.total_size` of the index: the bytes of all tensors (undefined if absent). */
  get totalSize(): number | undefined {
    const v = this.indexMetadata.get('total_size');
    return typeof v === 'number' ? v : undefined;
  }

  /** The shard files (relative to the folder), sorted as transformers lists them. */
  shardFiles(): string[] {
    return [...new Set(this.weightMap.values())].sort();
  }

  /** The shard that holds `name`, opened (header only) on first use. */
  shardOf(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (file === undefined) throw new SafetensorsError(this.source, `no tensor named ${JSON.stringify(name)}`);
    return this.shard(file, name);
  }

  entry(name: string): SafetensorsEntry {
    const shard = this.shardOf(name);
    if (!shard.has(name)) {
      throw new SafetensorsError(this.source, `tensor ${JSON.stringify(name)} is mapped to ${this.weightMap.get(name)}, but that file has no such tensor`);
    }
    return shard.entry(name);
  }

  /** One tensor, in its stored dtype, on the CPU. */
  tensor(name: string): Tensor {
    this.entry(name);
    return this.shardOf(name).tensor(name);
  }

  /**
   * Opens every shard and checks the index against them: every mapped tensor is in its shard,
   * and no shard holds a tensor the index does not map there (transformers would load it).
   */
  verify(): void {
    for (const name of this.weightMap.keys()) this.entry(name);
    for (const file of this.shardFiles()) {
      for (const name of this.shard(file).keys()) {
        const mapped = this.weightMap.get(name);
        if (mapped !== file) {
          throw new SafetensorsError(this.source, `${file} holds tensor ${JSON.stringify(name)}, which the index ${mapped === undefined ? 'does not list' : `maps to ${mapped}`}`);
        }
      }
    }
  }

  close(): void {
    for (const f of this.opened.values()) f.close();
    this.opened.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private shard(file: string, forTensor?: string): SafetensorsFile {
    let shard = this.opened.get(file);
    if (shard) return shard;
    const path = join(this.folder, file);
    const why = forTensor === undefined ? '' : ` (it holds tensor ${JSON.stringify(forTensor)})`;
    if (!existsSync(path)) throw new SafetensorsError(this.source, `shard ${file} is missing: no file ${path}${why}`);
    try {
      shard = SafetensorsFile.open(path);
    } catch (err) {
      throw new SafetensorsError(this.source, `shard ${file}${why}: ${(err as Error).message}`, { cause: err });
    }
    this.opened.set(file, shard);
    return shard;
  }
}

export interface SaveShardedOptions {
  /** The most tensor bytes per shard (default 5·10⁹, as huggingface_hub's "5GB"). */
  maxShardBytes?: number;
  /** Metadata of every shard (default `{"format": "pt"}`, as transformers writes). */
  metadata?: Readonly<Record<string, string>>;
}

export interface SavedCheckpoint {
  /** The safetensors files written, relative to the folder, in shard order. */
  files: string[];
  /** The index file, when there is more than one shard. */
  index?: string;
  /** Sum of the bytes of all tensors (the index's `metadata.total_size`). */
  totalSize: number;
}

/**
 * Splits tensors into shards as huggingface_hub does (see the file header): the tensor names of
 * each shard, in the caller's order.
 */
export function planShards(tensors: TensorDict, maxShardBytes: number, where = 'saveSharded'): { shards: string[][]; totalSize: number } {
  if (!(maxShardBytes > 0)) throw new Error(`${where}: maxShardBytes must be positive, got ${maxShardBytes}`);
  const entries: [string, SafetensorsValue][] = tensors instanceof Map ? [...(tensors as ReadonlyMap<string, SafetensorsValue>)] : Object.entries(tensors);
  const shards: string[][] = [];
  let current: string[] = [];
  let currentBytes = 0;
  let totalSize = 0;
  for (const [name, value] of entries) {
    const { bytes } = describeValue(name, value, where);
    totalSize += bytes;
    if (bytes > maxShardBytes) {
      shards.push([name]);
      continue;
    }
    if (currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(name);
    currentBytes += bytes;
  }
  if (current.length > 0) shards.push(current);
  // No tensors at all: still one (empty) file, so that the folder is a loadable checkpoint.
  if (shards.length === 0) shards.push([]);
  return { shards, totalSize };
}

/** The index JSON, as transformers writes it (`json.dumps(index, indent=2, sort_keys=True) + "\n"`). */
export function indexJson(weightMap: ReadonlyMap<string, string>, totalSize: number): string {
  const index: JsonObject = new Map<string, JsonValue>([
    ['metadata', new Map<string, JsonValue>([['total_size', totalSize]])],
    ['weight_map', new Map<string, JsonValue>(weightMap)],
  ]);
  return `${dumpsPython(index)}\n`;
}

/**
 * Writes `tensors` to `folder` as transformers' `save_pretrained` does (see the file header).
 * Leftovers of an earlier save that the new one would not overwrite are removed: shard files of
 * another count, and `model.safetensors` beside a new index (or an index beside a new single
 * file) — transformers' loader looks for `model.safetensors` first, so a stale one would shadow
 * the new shards.
 */
export function saveSharded(folder: string, tensors: TensorDict, options: SaveShardedOptions = {}): SavedCheckpoint {
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const metadata = options.metadata ?? { format: 'pt' };
  mkdirSync(folder, { recursive: true });
  const { shards, totalSize } = planShards(tensors, maxShardBytes, folder);
  const lookup: ReadonlyMap<string, SafetensorsValue> = tensors instanceof Map ? (tensors as ReadonlyMap<string, SafetensorsValue>) : new Map(Object.entries(tensors));
  const pick = (names: string[]): Map<string, SafetensorsValue> => new Map(names.map((n) => [n, lookup.get(n)!]));

  const files = shards.length === 1 ? [SAFE_WEIGHTS_NAME] : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  shards.forEach((names, i) => saveSafetensors(join(folder, files[i]!), pick(names), metadata));
  let index: string | undefined;
  if (shards.length > 1) {
    const weightMap = new Map<string, string>();
    shards.forEach((names, i) => names.forEach((n) => weightMap.set(n, files[i]!)));
    index = join(folder, SAFE_WEIGHTS_INDEX_NAME);
    const bytes = Buffer.from(indexJson(weightMap, totalSize), 'utf8');
    writeFileAtomic(index, (write) => write(bytes));
  }

  const keep = new Set(files);
  for (const name of readdirSync(folder)) {
    const stale =
      (SHARD_NAME.test(name) && !keep.has(name)) ||
      (name === SAFE_WEIGHTS_NAME && !keep.has(name)) ||
      (name === SAFE_WEIGHTS_INDEX_NAME && index === undefined);
    if (stale && statSync(join(folder, name)).isFile()) unlinkSync(join(folder, name));
  }
  return index === undefined ? { files, totalSize } : { files, index, totalSize };
}
