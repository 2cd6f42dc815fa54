/** A temporary folder per test, removed when the test ends. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export function tempDir(t: TestContext): { dir: string; file: (name: string, text?: string) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-data-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    file: (name, text) => {
      const path = join(dir, name);
      if (text !== undefined) writeFileSync(path, text);
      return path;
    },
  };
}
