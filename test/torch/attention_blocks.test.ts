// Long-sequence attention runs over blocks of query rows (native fused_ops.cc) once its scores
// would pass EMBTUNE_ATTENTION_CHUNK_MIB: the same output and gradients as the one-block path,
// to float32 rounding (k and v gradients are sums over the blocks), for Qwen3's causal +
// padding mask, BERT's additive row mask and no mask, with grouped-query heads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers.js';

type Result = Record<string, { out: number[]; dq: number[]; dk: number[]; dv: number[] }>;

function run(env: Record<string, string>): Result {
  const child = spawnSync(process.execPath, [join(ROOT, 'dist/test/torch/attention_blocks_worker.js')], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as Result;
}

test('attention over blocks of query rows equals the one-block computation: output and q, k, v gradients', () => {
  const whole = run({});
  // 3 × 4 heads × 37 keys × 4 bytes = 1,776 bytes a query row: a 4 KiB budget gives blocks of 2 rows.
  const blocks = run({ EMBTUNE_ATTENTION_CHUNK_MIB: String(4096 / (1024 * 1024)) });
  // The blocks did run: k's gradient, a sum over 19 blocks, is not the one-block sum to the bit.
  assert.notDeepEqual(blocks.causal!.dk, whole.causal!.dk);
  for (const mask of ['causal', 'rows', 'none']) {
    for (const key of ['out', 'dq', 'dk', 'dv'] as const) {
      const a = blocks[mask]![key];
      const b = whole[mask]![key];
      assert.equal(a.length, b.length);
      const scale = Math.max(...b.map(Math.abs));
      const worst = Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
      assert.ok(worst <= 1e-5 * scale, `${mask} ${key}: max |Δ| ${worst} of max ${scale}`);
    }
  }
});
