// The caching CPU allocator (native/src/cpu_allocator.cc): large blocks are reused rather than
// mapped again, their contents are what the ops write (zeros stay zeros), the cache can be
// emptied, and EMBTUNE_ALLOCATOR=malloc turns it off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { ROOT } from '../helpers.js';

const MiB = 1 << 20;

test('a freed large tensor block is handed out again for the same size, not mapped anew', () => {
  const before = torch.allocatorStats();
  assert.ok(before, 'the caching allocator is the default');
  const shape = [3 * 1024 * 1024 / 4 + 17]; // 3 MiB of float32, not a round size
  torch.tidy(() => torch.randn(shape).sum().item());
  const afterFirst = torch.allocatorStats()!;
  for (let i = 0; i < 5; i++) torch.tidy(() => torch.randn(shape).sum().item());
  const afterMore = torch.allocatorStats()!;
  assert.equal(afterMore.misses, afterFirst.misses, 'no new block for the same size');
  assert.ok(afterMore.hits >= afterFirst.hits + 5, 'each allocation served from the cache');
  assert.equal(afterMore.liveBytes, before.liveBytes, 'nothing stays live');
});

test('a reused block holds what the op wrote: zeros are zeros after a block full of other values', () => {
  torch.tidy(() => {
    const n = (4 * MiB) / 4;
    torch.full([n], 7).dispose();
    const zeros = torch.zeros([n]);
    assert.equal(zeros.abs().max().item(), 0);
    const ones = torch.ones([n]);
    assert.equal(ones.sum().item(), n);
  });
});

test('emptyCache gives every cached block back, and counts stay consistent', () => {
  torch.tidy(() => torch.randn([2 * MiB]).sum().item());
  assert.ok(torch.allocatorStats()!.cachedBytes > 0);
  torch.emptyCache();
  const stats = torch.allocatorStats()!;
  assert.equal(stats.cachedBytes, 0);
  assert.ok(stats.liveBytes >= 0 && stats.blocks >= 0);
  const heap = torch.heapBytes();
  if (heap !== undefined) {
    const big = torch.zeros([16 * MiB / 4]);
    assert.ok(torch.heapBytes()! - heap >= 16 * MiB, 'heapBytes counts live large blocks');
    big.dispose();
  }
});

test('EMBTUNE_ALLOCATOR=malloc keeps libtorch\'s own allocator (allocatorStats is undefined)', () => {
  const script = `
    const torch = await import(${JSON.stringify(join(ROOT, 'dist/src/torch/index.js'))});
    console.log(JSON.stringify([torch.allocatorStats() === undefined, torch.randn([1 << 20]).mul(0).sum().item()]));
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, EMBTUNE_ALLOCATOR: 'malloc' } });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), '[true,0]');
});
