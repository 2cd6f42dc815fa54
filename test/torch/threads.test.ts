// The addon in several JS environments (worker_threads): each environment has its own tensor
// table (native/src/tensor_table.cc, N-API instance data), so a worker computes with tensors
// safely beside the main thread; a handle carried across threads is refused by name; a worker's
// tensors are freed when it exits; the caching allocator serves two threads at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import * as torch from '../../src/torch/index.js';

const TORCH_URL = new URL('../../src/torch/index.js', import.meta.url).href;

/** Runs `body` (an async function body with `torch` and `data` in scope) in a fresh worker; resolves to what it returns. */
function inWorker<T>(body: string, data: unknown = null): Promise<T> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const torch = await import(${JSON.stringify(TORCH_URL)});
      const data = workerData;
      ${body}
    })().then((value) => parentPort.postMessage({ ok: true, value }), (err) => parentPort.postMessage({ ok: false, message: String(err && err.message) }));
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: data });
    worker.once('message', (m: { ok: boolean; value?: T; message?: string }) => (m.ok ? resolve(m.value as T) : reject(new Error(m.message))));
    worker.once('error', reject);
  });
}

test('a worker thread computes with its own tensors while the main thread computes with its own', async () => {
  const before = torch.liveTensors();
  const a = torch.tidy(() => torch.arange(0, 64, 1, { dtype: 'float64' }).view([8, 8]));
  const pending = inWorker<{ sum: number; live: number }>(`
    let sum = 0;
    for (let i = 0; i < 200; i++) {
      sum = torch.tidy(() => torch.arange(0, 64, 1, { dtype: 'float64' }).view([8, 8]).matmul(torch.ones([8, 8], { dtype: 'float64' })).sum().item());
    }
    const kept = torch.ones([3]);
    return { sum, live: torch.liveTensors() };
  `);
  let mainSum = 0;
  for (let i = 0; i < 200; i++) mainSum = torch.tidy(() => a.matmul(torch.ones([8, 8], { dtype: 'float64' })).sum().item());
  const worker = await pending;
  assert.equal(mainSum, 8 * 2016);
  assert.equal(worker.sum, 8 * 2016, 'the worker computed the same sum');
  assert.equal(worker.live, 1, "the worker's table holds only its own live tensor");
  assert.equal(torch.liveTensors(), before + 1, "the main thread's table is untouched by the worker");
  a.dispose();
});

test('a tensor handle carried to another thread is refused with an error that says why', async () => {
  const t = torch.ones([2, 2]);
  // A Tensor posted to a worker arrives as a plain object; its handle number is what could leak.
  const handle: number = t.handle;
  assert.equal(typeof handle, 'number');
  const message = await inWorker<string>(`
    const made = torch.ones([2, 2]);  // the worker's own first slot: a naive table would alias it
    const native = (await import(${JSON.stringify(new URL('../../src/torch/native.js', import.meta.url).href)})).native;
    try { native.sum(data.handle); return 'no error'; } catch (err) { return String(err.message); }
  `, { handle });
  assert.match(message, /belongs to another thread/);
  assert.equal(t.sum().item(), 4, 'the main thread still owns its tensor');
  t.dispose();
});

test("a worker's undisposed tensors are freed when it exits", async () => {
  const stats = torch.allocatorStats();
  if (stats === undefined) return; // EMBTUNE_ALLOCATOR=malloc: no counters to read
  const live = stats.liveBytes;
  const inside = await inWorker<number>(`
    globalThis.held = [torch.ones([1 << 20]), torch.ones([1 << 20])];  // 2 × 4 MiB, never disposed
    return torch.allocatorStats().liveBytes;
  `);
  assert.ok(inside >= live + 8 * (1 << 20), `the worker's tensors were live (${inside} bytes, ${live} before)`);
  // The environment is torn down after its last message; give it a moment.
  for (let i = 0; i < 50 && torch.allocatorStats()!.liveBytes > live; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(torch.allocatorStats()!.liveBytes, live, 'its 8 MiB went back to the allocator');
});

test('the caching allocator serves large tensors to two threads at once without mixing them up', async () => {
  const rounds = 300;
  const pending = inWorker<number>(`
    let bad = 0;
    for (let i = 0; i < ${rounds}; i++) {
      bad += torch.tidy(() => { const x = torch.full([(1 << 18) + i], 3); return x.sum().item() === 3 * ((1 << 18) + i) ? 0 : 1; });
    }
    return bad;
  `);
  let bad = 0;
  for (let i = 0; i < rounds; i++) {
    bad += torch.tidy(() => {
      const x = torch.full([(1 << 18) + i], 5);
      return x.sum().item() === 5 * ((1 << 18) + i) ? 0 : 1;
    });
  }
  assert.equal(bad, 0);
  assert.equal(await pending, 0);
});

test("a worker thread loading the engine leaves the process's BLAS threads as another thread set them", async () => {
  // OpenBLAS's pool is process-wide (libtorch's intra-op count is per thread under OpenMP): the
  // server's model worker sets --threads, and its tokenizer or chat thread loading the engine
  // afterwards must not reset the pool to the default.
  const blas = torch.blasNumThreads();
  if (blas === undefined) return; // not OpenBLAS: nothing process-wide to keep
  const before = torch.getNumThreads();
  try {
    torch.setNumThreads(1);
    assert.equal(torch.blasNumThreads(), 1);
    assert.equal(await inWorker<number>('return torch.blasNumThreads();'), 1, 'loading the engine in a worker kept it');
    assert.equal(torch.blasNumThreads(), 1);
    assert.equal(await inWorker<number>('torch.setNumThreads(2); return torch.blasNumThreads();'), 2, 'a worker may still set it on purpose');
    assert.equal(torch.blasNumThreads(), 2);
  } finally {
    torch.setNumThreads(before);
  }
});
