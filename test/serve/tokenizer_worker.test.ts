// The server's tokenizer thread (src/serve/tokenizer_worker.ts) reads tokenizers and model
// descriptions only: it must never load the engine, whose thread settings are process-wide —
// loading it there once reset the model worker's --threads 1 and changed its float32 rounding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Every module of this project `entry` imports at run time (type-only imports are gone from the compiled JS). */
function runtimeImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm)) {
      visit(resolve(dirname(file), m[1] ?? m[2]!));
    }
  };
  visit(entry);
  return seen;
}

test('the tokenizer worker loads no module of the engine (src/torch), directly or through another', () => {
  const entry = fileURLToPath(new URL('../../src/serve/tokenizer_worker.js', import.meta.url));
  const modules = [...runtimeImports(entry)];
  assert.ok(modules.some((m) => m.endsWith('/embed/text_encoders.js')) && modules.some((m) => m.endsWith('/models/model_info.js')), 'the walk follows imports (the check can fail)');
  const engine = modules.filter((m) => /\/src\/(torch|models\/(?!model_info))/.test(m));
  assert.deepEqual(engine, [], 'modules that load libtorch');
  // The model worker does load it (the walk would see it).
  const model = [...runtimeImports(fileURLToPath(new URL('../../src/serve/worker.js', import.meta.url)))];
  assert.ok(model.some((m) => m.endsWith('/torch/index.js')));
});
