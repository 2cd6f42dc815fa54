/**
 * Content hashes of the pipeline's inputs and outputs: sha256 of a file's bytes, and for a folder
 * sha256 over its files' relative paths and hashes in code-point order (so a renamed or edited
 * file anywhere inside changes it). A model of a few GB is hashed once: the hash is remembered
 * under (path, size, mtime) in a small JSON cache beside the run, as build tools do.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';

const CHUNK = 1 << 22;

/** sha256 of one file's bytes, hex. */
export function hashFile(path: string): string {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, CHUNK, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** Every file under `folder` (recursively), relative, in code-point order; hidden temporary files left out. */
export function listFiles(folder: string): string[] {
  return (readdirSync(folder, { recursive: true }) as string[])
    .filter((p) => !p.split('/').some((part) => part.startsWith('.') && part.endsWith('.tmp')) && statSync(join(folder, p)).isFile())
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

interface CacheEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Hashes files and folders, remembering file hashes under (path, size, mtime). */
export class ContentHasher {
  private readonly entries: Record<string, CacheEntry>;
  private dirty = false;

  constructor(readonly cacheFile?: string) {
    this.entries = {};
    if (cacheFile && existsSync(cacheFile)) {
      try {
        Object.assign(this.entries, JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, CacheEntry>);
      } catch {
        // A damaged cache only costs re-hashing.
      }
    }
  }

  file(path: string): string {
    const st = statSync(path);
    const cached = this.entries[path];
    if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs) return cached.sha256;
    const sha256 = hashFile(path);
    this.entries[path] = { size: st.size, mtimeMs: st.mtimeMs, sha256 };
    this.dirty = true;
    return sha256;
  }

  /** A file's hash, or a folder's hash over its files. */
  path(path: string): string {
    if (!statSync(path).isDirectory()) return this.file(path);
    const hash = createHash('sha256');
    for (const rel of listFiles(path)) hash.update(`${rel}\0${this.file(join(path, rel))}\n`);
    return hash.digest('hex');
  }

  /** sha256 and size of each file under `folder` by relative path (a manifest's record of what a stage wrote). */
  files(folder: string, skip: readonly string[] = []): Record<string, { sha256: string; size: number }> {
    return Object.fromEntries(
      listFiles(folder)
        .filter((rel) => !skip.includes(rel))
        .map((rel) => [rel, { sha256: this.file(join(folder, rel)), size: statSync(join(folder, rel)).size }]),
    );
  }

  save(): void {
    if (!this.cacheFile || !this.dirty) return;
    const text = JSON.stringify(this.entries);
    writeFileAtomic(this.cacheFile, (write) => write(Buffer.from(text, 'utf8')));
    this.dirty = false;
  }
}

/** sha256 of a JSON value with its object keys sorted (a stable fingerprint of a config section). */
export function hashJson(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('hex');
}

export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
