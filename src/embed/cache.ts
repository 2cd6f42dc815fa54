/**
 * An on-disk embedding cache keyed by (model, prompt, text) — embtune's `cache_folder`
 * (REFERENCE §2.1). sentence-transformers caches one .npy per whole text list, keyed by a hash of
 * (model name, prompt, prompt name, all texts), so one changed text re-embeds everything; here each
 * text is its own entry, so a second run over a grown or reordered corpus embeds only the texts it
 * has not seen. The prompt is part of the key (v6 behaviour; v5.1's prompt-insensitive key served
 * query vectors for documents).
 *
 * Layout: `<folder>/<sha256(modelKey)[:32]>/` holds `model.json` ({format, modelKey, dim}) and
 * append-only shard files `shard-*.emb`, one per `store` call:
 *
 *   bytes 0–7     magic "EMBTCSH1"
 *   bytes 8–15    dim, count (uint32 little-endian)
 *   count × 32    sha256 of each entry key (the prompt and the text)
 *   count × dim   float32 little-endian vectors, in the same order
 *   32            sha256 of all the bytes before it
 *
 * Every file is written with writeFileAtomic (temporary file, fsync, rename), so a crash leaves
 * either a whole shard or none, and two writers (two async jobs in one process, or two processes)
 * each add their own shard under a unique name instead of writing into one file. A shard that is
 * nevertheless damaged (wrong magic, size or checksum: a disk fault or a hand edit) makes `open`
 * throw an Error that names the file and the fault and says to delete it; the cache never guesses
 * around a damaged file (that is the "clear error" choice, not a silent rebuild).
 *
 * The model key (`modelContentKey`) names the model by its content, not its path: the sha256 of
 * every file of the model folder (weights, config, tokenizer, sentence-transformers modules) and
 * of the adapter folder, so retraining or re-merging into the same folder is a different model
 * and misses. Hashing a 1.2 GB checkpoint takes seconds, so each file's hash is computed once per
 * version of the file and remembered (`file-hashes.json` in the cache folder, and in memory),
 * keyed by device, inode, size, mtime and ctime in nanoseconds: a rewrite changes ctime even when
 * size and mtime are restored, and an atomic replace changes the inode.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';

export interface EmbeddingCacheOptions {
  /**
   * Identifies the vectors' source: everything that changes them belongs in it (model id and
   * revision or weights hash, dtype, pooling, normalisation, max length). Different keys never
   * share entries.
   */
  modelKey: string;
  /** Vector length; every stored vector must have it. */
  dim: number;
}

const MAGIC = 'EMBTCSH1';
const HEADER_BYTES = 16;
const DIGEST_BYTES = 32;
const MODEL_FILE = 'model.json';
const MODEL_FORMAT = 'embtune-embedding-cache/1';

/** Where an entry lives: its shard's position in `#shards` and its row there. */
interface Location {
  shard: number;
  row: number;
}

export class EmbeddingCache {
  /** This model's folder inside the cache folder. */
  readonly folder: string;
  readonly modelKey: string;
  readonly dim: number;
  /** File name and entry count of each shard, in the order they were read or written. */
  readonly #shards: { name: string; count: number }[] = [];
  readonly #entries = new Map<string, Location>();

  private constructor(folder: string, options: EmbeddingCacheOptions) {
    this.folder = folder;
    this.modelKey = options.modelKey;
    this.dim = options.dim;
  }

  /**
   * Opens (creating if needed) the cache of `options.modelKey` under `folder`, reading and
   * verifying every shard's keys and checksum (the vectors are read only when looked up).
   */
  static open(folder: string, options: EmbeddingCacheOptions): EmbeddingCache {
    if (!Number.isInteger(options.dim) || options.dim <= 0) throw new Error(`EmbeddingCache.open: dim must be a positive integer, got ${options.dim}`);
    if (typeof options.modelKey !== 'string' || options.modelKey === '') throw new Error('EmbeddingCache.open: modelKey must be a non-empty string');
    const modelFolder = join(folder, sha256Hex(options.modelKey).slice(0, 32));
    mkdirSync(modelFolder, { recursive: true });
    checkOrWriteModelFile(modelFolder, options);
    const cache = new EmbeddingCache(modelFolder, options);
    for (const name of readdirSync(modelFolder).filter((n) => /^shard-.*\.emb$/.test(n)).sort()) cache.#index(name);
    return cache;
  }

  /** Number of distinct (prompt, text) entries. */
  get size(): number {
    return this.#entries.size;
  }

  /** The cached vector of each text under `prompt` (a copy), or undefined where there is none. */
  lookup(texts: readonly string[], prompt = ''): (Float32Array | undefined)[] {
    const found: (Float32Array | undefined)[] = new Array(texts.length).fill(undefined);
    const byShard = new Map<number, { position: number; row: number }[]>();
    texts.forEach((text, position) => {
      const at = this.#entries.get(entryDigest(prompt, text));
      if (at === undefined) return;
      let wanted = byShard.get(at.shard);
      if (!wanted) byShard.set(at.shard, (wanted = []));
      wanted.push({ position, row: at.row });
    });
    for (const [shard, wanted] of byShard) {
      const { name, count } = this.#shards[shard]!;
      const fd = openSync(join(this.folder, name), 'r');
      try {
        for (const { position, row } of wanted) found[position] = this.#readVector(fd, count, row);
      } finally {
        closeSync(fd);
      }
    }
    return found;
  }

  /**
   * Adds the vectors of `texts` under `prompt` as one new shard; entries already cached (and
   * repeats within the call) are skipped. Returns how many entries were written.
   */
  store(texts: readonly string[], prompt: string | undefined, vectors: readonly Float32Array[]): number {
    if (texts.length !== vectors.length) throw new Error(`EmbeddingCache.store: ${texts.length} texts but ${vectors.length} vectors`);
    const digests: Buffer[] = [];
    const rows: Float32Array[] = [];
    const seen = new Set<string>();
    texts.forEach((text, i) => {
      const vector = vectors[i]!;
      if (!(vector instanceof Float32Array) || vector.length !== this.dim) {
        throw new Error(`EmbeddingCache.store: vector ${i} has length ${(vector as { length?: number })?.length}, the cache of '${this.modelKey}' holds dim ${this.dim}`);
      }
      const digest = entryDigest(prompt ?? '', text);
      if (this.#entries.has(digest) || seen.has(digest)) return;
      seen.add(digest);
      digests.push(Buffer.from(digest, 'latin1'));
      rows.push(vector);
    });
    if (rows.length === 0) return 0;
    const name = `shard-${Date.now().toString().padStart(15, '0')}-${process.pid}-${randomBytes(4).toString('hex')}.emb`;
    writeFileAtomic(join(this.folder, name), (write) => {
      const hash = createHash('sha256');
      const emit = (bytes: Uint8Array) => {
        hash.update(bytes);
        write(bytes);
      };
      const header = Buffer.alloc(HEADER_BYTES);
      header.write(MAGIC, 0, 'latin1');
      header.writeUInt32LE(this.dim, 8);
      header.writeUInt32LE(rows.length, 12);
      emit(header);
      emit(Buffer.concat(digests));
      for (const row of rows) emit(littleEndianBytes(row));
      write(hash.digest());
    });
    const shard = this.#shards.push({ name, count: rows.length }) - 1;
    digests.forEach((digest, row) => this.#entries.set(digest.toString('latin1'), { shard, row }));
    return rows.length;
  }

  /**
   * Verifies one shard (magic, size, checksum — streamed, so that a large shard is never held in
   * memory whole), then records where each of its entries lives.
   */
  #index(name: string): void {
    const path = join(this.folder, name);
    const damaged = (what: string) => new Error(`embedding cache: ${path} is damaged (${what}); delete this file (its texts will be embedded again)`);
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const header = readExactly(fd, 0, Math.min(size, HEADER_BYTES));
      if (size < HEADER_BYTES + DIGEST_BYTES || header.toString('latin1', 0, 8) !== MAGIC) throw damaged('not an embtune cache shard: wrong magic or too short');
      const dim = header.readUInt32LE(8);
      const count = header.readUInt32LE(12);
      const expected = shardBytes(dim, count);
      if (size !== expected) throw damaged(`${size} bytes, but its header (dim ${dim}, ${count} entries) needs ${expected}`);
      if (dim !== this.dim) throw damaged(`it holds dim ${dim} but the model's cache holds dim ${this.dim}`);
      const digests = readExactly(fd, HEADER_BYTES, count * DIGEST_BYTES);
      const hash = createHash('sha256').update(header).update(digests);
      const chunk = Buffer.alloc(1 << 22);
      for (let at = HEADER_BYTES + digests.length; at < expected - DIGEST_BYTES; ) {
        const length = Math.min(chunk.length, expected - DIGEST_BYTES - at);
        hash.update(readExactly(fd, at, length, chunk));
        at += length;
      }
      if (!hash.digest().equals(readExactly(fd, expected - DIGEST_BYTES, DIGEST_BYTES))) throw damaged('checksum mismatch');
      const shard = this.#shards.push({ name, count }) - 1;
      for (let row = 0; row < count; row++) {
        const digest = digests.toString('latin1', row * DIGEST_BYTES, (row + 1) * DIGEST_BYTES);
        // The first shard to hold an entry wins; later copies come from concurrent writers.
        if (!this.#entries.has(digest)) this.#entries.set(digest, { shard, row });
      }
    } finally {
      closeSync(fd);
    }
  }

  #readVector(fd: number, count: number, row: number): Float32Array {
    const vector = new Float32Array(this.dim);
    readExactly(fd, HEADER_BYTES + count * DIGEST_BYTES + row * this.dim * 4, vector.byteLength, Buffer.from(vector.buffer));
    return fromLittleEndian(vector);
  }
}

/** An embedding function: texts in, one vector per text out, in order. */
export type EmbedTexts = (texts: string[]) => Promise<Float32Array[]>;

export interface CachedEmbedOptions {
  /** The prompt the wrapped function prepends (part of the cache key). */
  prompt?: string;
  /** Told, for every call, how many texts came from the cache and how many were embedded. */
  onLookup?: (cached: number, embedded: number) => void;
}

/**
 * Wraps an embedding function so that it embeds only the texts the cache lacks (each distinct
 * missing text once), stores what it embedded, and answers every text in order.
 */
export function cachedEmbed(cache: EmbeddingCache, embed: EmbedTexts, options: CachedEmbedOptions = {}): EmbedTexts {
  const prompt = options.prompt ?? '';
  return async (texts) => {
    const vectors = cache.lookup(texts, prompt);
    const missing = [...new Set(texts.filter((_, i) => vectors[i] === undefined))];
    options.onLookup?.(texts.length - vectors.filter((v) => v === undefined).length, missing.length);
    if (missing.length > 0) {
      const embedded = await embed(missing);
      if (!Array.isArray(embedded) || embedded.length !== missing.length) {
        throw new Error(`cachedEmbed: the embedding function returned ${Array.isArray(embedded) ? embedded.length : typeof embedded} vectors for ${missing.length} texts`);
      }
      cache.store(missing, prompt, embedded);
      const byText = new Map(missing.map((text, i) => [text, embedded[i]!]));
      texts.forEach((text, i) => {
        vectors[i] ??= byText.get(text);
      });
    }
    return vectors as Float32Array[];
  };
}

function checkOrWriteModelFile(modelFolder: string, options: EmbeddingCacheOptions): void {
  const path = join(modelFolder, MODEL_FILE);
  if (!existsSync(path)) {
    const text = JSON.stringify({ format: MODEL_FORMAT, modelKey: options.modelKey, dim: options.dim }, null, 2) + '\n';
    writeFileAtomic(path, (write) => write(Buffer.from(text, 'utf8')));
    return;
  }
  let meta: { format?: unknown; modelKey?: unknown; dim?: unknown };
  try {
    meta = JSON.parse(readFileSync(path, 'utf8')) as typeof meta;
  } catch (err) {
    throw new Error(`embedding cache: ${path} is damaged (${(err as Error).message}); delete the folder ${modelFolder}`);
  }
  if (meta.format !== MODEL_FORMAT) throw new Error(`embedding cache: ${path} has format ${JSON.stringify(meta.format)}, expected '${MODEL_FORMAT}'`);
  if (meta.modelKey !== options.modelKey) throw new Error(`embedding cache: ${path} belongs to model key ${JSON.stringify(meta.modelKey)}, not ${JSON.stringify(options.modelKey)}`);
  if (meta.dim !== options.dim) throw new Error(`embedding cache: ${path} holds vectors of dim ${meta.dim} for '${options.modelKey}', but dim ${options.dim} was asked for`);
}

/** The entry key: prompt and text, length-delimited by JSON so that no two pairs collide. */
/** `length` bytes at `position` (into `into` when given); a short read means the file shrank. */
function readExactly(fd: number, position: number, length: number, into?: Buffer): Buffer {
  const bytes = into ? into.subarray(0, length) : Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) throw new Error(`embedding cache: a file shrank while being read (${length - done} bytes missing at ${position + done})`);
    done += n;
  }
  return bytes;
}

function entryDigest(prompt: string, text: string): string {
  return createHash('sha256').update(JSON.stringify([prompt, text])).digest().toString('latin1');
}

/** sha256 of a text (UTF-8), hex. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function shardBytes(dim: number, count: number): number {
  return HEADER_BYTES + count * DIGEST_BYTES + count * dim * 4 + DIGEST_BYTES;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function littleEndianBytes(vector: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
  const out = Buffer.alloc(vector.byteLength);
  vector.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

function fromLittleEndian(vector: Float32Array): Float32Array {
  if (LITTLE_ENDIAN) return vector;
  const view = new DataView(vector.buffer);
  return Float32Array.from({ length: vector.length }, (_, i) => view.getFloat32(i * 4, true));
}

// ------------------------------------------------------------------ content keys

const HASH_MEMO_FILE = 'file-hashes.json';
const HASH_MEMO_FORMAT = 'embtune-file-hashes/1';
/** In-process memo: version key → sha256 hex. */
const hashMemo = new Map<string, string>();

/** What identifies one version of a file without reading it (see the file comment). */
function fileVersion(path: string): string {
  const st = statSync(path, { bigint: true });
  return JSON.stringify([resolve(path), String(st.dev), String(st.ino), String(st.size), String(st.mtimeNs), String(st.ctimeNs)]);
}

function readHashMemo(folder: string | undefined): Record<string, string> {
  if (!folder) return {};
  const path = join(folder, HASH_MEMO_FILE);
  if (!existsSync(path)) return {};
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown; hashes?: unknown };
    return value.format === HASH_MEMO_FORMAT && typeof value.hashes === 'object' && value.hashes !== null ? (value.hashes as Record<string, string>) : {};
  } catch {
    return {}; // a damaged memo only costs re-hashing
  }
}

function sha256OfFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(1 << 24);
    for (let at = 0; ; ) {
      const n = readSync(fd, chunk, 0, chunk.length, at);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export interface ContentHashOptions {
  /** A folder to remember hashes in across runs (the embedding cache folder); default: this process only. */
  memoFolder?: string;
  /** Told about each file actually read (not remembered), e.g. to say why a run pauses. */
  onHash?: (path: string, bytes: number) => void;
}

/** The sha256 (hex) of each file's bytes, read only when that version of the file was not seen before. */
export function fileContentHashes(paths: readonly string[], options: ContentHashOptions = {}): string[] {
  const stored = readHashMemo(options.memoFolder);
  let changed = false;
  const out = paths.map((path) => {
    const version = fileVersion(path);
    let digest = hashMemo.get(version) ?? stored[version];
    if (digest === undefined) {
      options.onHash?.(path, statSync(path).size);
      digest = sha256OfFile(path);
      stored[version] = digest;
      changed = true;
    }
    hashMemo.set(version, digest);
    return digest;
  });
  if (changed && options.memoFolder) {
    mkdirSync(options.memoFolder, { recursive: true });
    // Entries of files that no longer exist in that version are dropped, so the memo stays small.
    const live = Object.fromEntries(Object.entries(stored).filter(([version]) => isCurrentVersion(version)));
    const text = JSON.stringify({ format: HASH_MEMO_FORMAT, hashes: live }) + '\n';
    writeFileAtomic(join(options.memoFolder, HASH_MEMO_FILE), (write) => write(Buffer.from(text, 'utf8')));
  }
  return out;
}

function isCurrentVersion(version: string): boolean {
  try {
    const [path] = JSON.parse(version) as [string];
    return fileVersion(path) === version;
  } catch {
    return false;
  }
}

/** Files of a model (or adapter) folder that decide its vectors: all but docs and VCS files, sentence-transformers module folders included. */
function modelFiles(folder: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith('.') || /\.(md|lock)$/i.test(entry.name)) continue; // model cards, git and hub lock files
      const isDir = entry.isDirectory() || (entry.isSymbolicLink() && statSync(path).isDirectory());
      if (isDir) {
        // Subfolders: sentence-transformers modules (1_Pooling, 2_Normalize, …), not checkpoints or caches.
        if (depth === 0 && /^\d+_/.test(entry.name)) visit(path, depth + 1);
        continue;
      }
      out.push(path);
    }
  };
  visit(folder, 0);
  return out;
}

export interface ModelContentKeyOptions extends ContentHashOptions {
  /** A LoRA adapter folder applied on top (its files are part of the key). */
  adapter?: string;
  /** Everything else that changes the vectors (dtype, max length, pooling overrides). */
  settings?: Readonly<Record<string, unknown>>;
}

/**
 * The embedding cache's model key of a model folder: the sha256 of each of its files (and of the
 * adapter's), plus the settings. The same bytes anywhere give the same key; any changed byte, a
 * new key.
 */
export function modelContentKey(folder: string, options: ModelContentKeyOptions = {}): string {
  const digestsOf = (dir: string) => {
    const files = modelFiles(dir);
    if (files.length === 0) throw new Error(`modelContentKey: ${dir} holds no files`);
    const hashes = fileContentHashes(files, options);
    return Object.fromEntries(files.map((file, i) => [relative(dir, file).split('\\').join('/'), hashes[i]!]));
  };
  return JSON.stringify({
    format: 'embtune-model-content/1',
    model: digestsOf(folder),
    adapter: options.adapter ? digestsOf(options.adapter) : null,
    settings: options.settings ?? {},
  });
}
