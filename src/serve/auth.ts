/**
 * Bearer API keys (`--api-key`, `--api-key-file`), checked on every route but /health. The
 * comparison is constant-time: both sides are hashed to 32 bytes (so lengths leak nothing) and
 * compared with `timingSafeEqual`, against every key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class ApiKeys {
  readonly #digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.#digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.#digests.length > 0;
  }

  /** Whether an `Authorization` header carries one of the keys. */
  accepts(header: string | undefined): boolean {
    const match = /^Bearer[ ]+(.+)$/i.exec(header ?? '');
    if (!match) return false;
    const given = digest(match[1]!.trim());
    let ok = false;
    for (const d of this.#digests) ok = timingSafeEqual(given, d) || ok; // no early exit
    return ok;
  }
}

/** The keys of an --api-key-file: one per line; blank lines and `#` comments are skipped. */
export function parseKeyFile(text: string, file: string): string[] {
  const keys = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (keys.length === 0) throw new Error(`${file} holds no API key (one per line)`);
  return keys;
}
