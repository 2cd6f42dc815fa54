// Fuzz of embtune's own native kernels (issue 12): 10,000 calls with random shapes, dtypes, devices
// (CPU and "meta", whose memory the host cannot read), layouts, heap sizes and argument values —
// BigInts, doubles past int64, NaN, strings, disposed tensors. No call may crash the process, and
// every call that fails throws a JS Error whose message starts with the kernel's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { native, type NativeHandle } from '../../src/torch/native.js';
import type { DType } from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';

/** xorshift32: the same 10,000 cases on every run. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}
type Rng = ReturnType<typeof rng>;

const DTYPES: DType[] = ['float32', 'float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool', 'uint8'];
const ODD_VALUES: unknown[] = [0, 1, -1, 2, 3, 0.5, -0.25, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, 2 ** 63, -(2 ** 63), 1e300, 2n ** 64n, -5n, 7n, 'x', undefined, null, true, {}, []];

function randomShape(r: Rng, dims = r.int(5)): number[] {
  return Array.from({ length: dims }, () => (r.chance(0.1) ? 0 : 1 + r.int(4)));
}

/** A random tensor: any dtype, sometimes on meta, sometimes transposed (not contiguous), sometimes disposed. */
function randomTensor(r: Rng, shape = randomShape(r)): Tensor {
  const device = r.chance(0.1) ? 'meta' : 'cpu';
  let t = torch.randn(shape, { device }).to(r.pick(DTYPES));
  if (t.ndim >= 2 && r.chance(0.2)) t = t.transpose(0, t.ndim - 1);
  if (r.chance(0.02)) t.dispose();
  return t;
}

function randomValue(r: Rng, sensible: () => unknown): unknown {
  return r.chance(0.7) ? sensible() : r.pick(ODD_VALUES);
}

/** Heaps that mostly fit a block, with sizes that are mostly in range. */
function heapCase(r: Rng): unknown[] {
  const queries = 1 + r.int(4);
  const k = r.int(4);
  const rows = r.int(queries + 1);
  const cols = r.int(6);
  const block = r.chance(0.8) ? torch.randn([rows, cols]) : randomTensor(r);
  const scores = r.chance(0.8) ? torch.randn([queries, k]) : randomTensor(r);
  const indices = r.chance(0.8) ? torch.zeros([queries, k], { dtype: 'int32' }) : randomTensor(r);
  const sizes = r.chance(0.8)
    ? torch.tensor(Array.from({ length: queries }, () => (r.chance(0.8) ? r.int(k + 1) : r.pick([-1, k + 1, 2 ** 31 - 1, -(2 ** 31)]))), { dtype: 'int32' })
    : randomTensor(r);
  return [block, scores, indices, sizes, randomValue(r, () => r.int(queries - rows + 1)), randomValue(r, () => r.int(1000))];
}

/** [native name, arguments]: tensors as handles, everything else as given. */
const KERNELS: [string, (r: Rng) => unknown[]][] = [
  ['topkHeapOffer', heapCase],
  ['dropoutLinear', (r) => {
    const inF = 1 + r.int(4);
    return [r.chance(0.7) ? torch.randn([...randomShape(r, r.int(3)), inF]) : randomTensor(r), r.chance(0.7) ? torch.randn([1 + r.int(3), inF]) : randomTensor(r), randomValue(r, () => r.next())];
  }],
  ['siluMul', (r) => {
    const shape = randomShape(r);
    return [randomTensor(r, shape), randomTensor(r, r.chance(0.7) ? shape : randomShape(r))];
  }],
  ['rmsNorm', (r) => {
    const shape = randomShape(r);
    return [randomTensor(r, shape), randomTensor(r, r.chance(0.7) ? shape.slice(-1) : randomShape(r)), randomValue(r, () => 1e-6)];
  }],
  ['rotaryEmbedding', (r) => {
    const shape = randomShape(r);
    return [randomTensor(r, shape), randomTensor(r, shape.slice(-2)), randomTensor(r, r.chance(0.7) ? shape.slice(-2) : randomShape(r))];
  }],
  ['scaledDotProductAttention', (r) => {
    const [b, h, l, d] = [1 + r.int(2), 1 + r.int(4), 1 + r.int(4), 1 + r.int(4)];
    const kvHeads = r.pick([1, h, 1 + r.int(4)]);
    const q = r.chance(0.7) ? torch.randn([b, h, l, d]) : randomTensor(r);
    const k = r.chance(0.7) ? torch.randn([b, kvHeads, l, d]) : randomTensor(r);
    const v = r.chance(0.7) ? torch.randn([b, kvHeads, l, d]) : randomTensor(r);
    const mask = r.chance(0.5) ? undefined : r.chance(0.5) ? torch.zeros([b, 1, l, l]) : randomTensor(r);
    return [q, k, v, mask, randomValue(r, () => 0), r.chance(0.2), randomValue(r, () => d ** -0.5), r.chance(0.5)];
  }],
  ['mmOut', (r) => {
    const [m, n, p] = [1 + r.int(3), 1 + r.int(3), 1 + r.int(3)];
    return [r.chance(0.6) ? torch.empty([m, p]) : randomTensor(r), r.chance(0.7) ? torch.randn([m, n]) : randomTensor(r), r.chance(0.7) ? torch.randn([n, p]) : randomTensor(r)];
  }],
];

test('10,000 random calls of the native kernels: no crash, and every error names the kernel', () => {
  const r = rng(20261203);
  const callable = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  const outcomes = new Map<string, { ok: number; errors: number; ms: number }>(KERNELS.map(([name]) => [name, { ok: 0, errors: 0, ms: 0 }]));
  const started = Date.now();
  // One intra-op thread: the calls are tiny, and on a loaded machine waking a pool costs more than the work.
  const threads = torch.getNumThreads();
  torch.setNumThreads(1);
  torch.noGrad(() => {
    for (let i = 0; i < 10_000; i++) {
      const [name, make] = KERNELS[i % KERNELS.length]!;
      torch.tidy(() => {
        const args = make(r).map((a) => (a instanceof Tensor ? a.handle : a));
        const outcome = outcomes.get(name)!;
        const t0 = performance.now();
        try {
          const result = callable[name]!(...args);
          if (typeof result === 'number') new Tensor(result as NativeHandle).dispose();
          outcome.ok++;
        } catch (err) {
          outcome.errors++;
          assert.ok(err instanceof Error, `call ${i}: ${name} threw a non-Error ${String(err)}`);
          assert.ok(err.message.startsWith(`${name}(`), `call ${i}: the error does not name ${name}: ${err.message}`);
          assert.equal((err as Error & { op?: string }).op, name);
        }
        outcome.ms += performance.now() - t0;
      });
    }
  });
  torch.setNumThreads(threads);
  if (process.env.EMBTUNE_FUZZ_PROFILE) process.stderr.write(`${Date.now() - started} ms ${JSON.stringify([...outcomes])}\n`);
  // Both paths were exercised for every kernel: the fuzz reached the kernels, not only the checks.
  for (const [name, { ok, errors }] of outcomes) assert.ok(ok > 50 && errors > 50, `${name}: ${ok} calls succeeded, ${errors} failed`);
  assert.ok(Date.now() - started < 60_000, `the fuzz took ${Date.now() - started} ms`);
});
