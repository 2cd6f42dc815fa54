// Every native kernel checks what it is given and throws a JS Error naming the kernel, instead of
// writing out of bounds, reading another device's memory or aborting (issue 12): heap sizes,
// devices, dtypes and layouts of the top-k merge; dropout_linear off the CPU; BigInts and doubles
// outside int64; exceptions that are not std::exception. The "meta" device (shapes, no memory)
// stands in for a device whose memory the host cannot read, so this runs without a GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';

const { kernels } = torch;

/** Heaps for 2 queries of k = 3, and a [2, 4] block of scores. */
function heaps() {
  return {
    block: torch.randn([2, 4]),
    scores: torch.zeros([2, 3]),
    indices: torch.zeros([2, 3], { dtype: 'int32' }),
    sizes: torch.zeros([2], { dtype: 'int32' }),
  };
}

test('topkHeapOffer refuses heap sizes outside [0, k] (a negative or oversized size would index past the row)', () => {
  torch.tidy(() => {
    for (const bad of [-1, 4, 2147483647, -2147483648]) {
      const h = heaps();
      h.sizes.copy_(torch.tensor([0, bad], { dtype: 'int32' }));
      assert.throws(() => kernels.topkHeapOffer(h.block, h.scores, h.indices, h.sizes, 0, 0), new RegExp(`^Error: topkHeapOffer\\(.*\\): heap size ${bad} of query 1 is outside \\[0, k = 3\\]`));
      assert.deepEqual(Array.from(h.scores.toTypedArray<'float32'>()), [0, 0, 0, 0, 0, 0], 'nothing was written');
    }
    const h = heaps();
    h.sizes.copy_(torch.tensor([3, 0], { dtype: 'int32' }));
    kernels.topkHeapOffer(h.block, h.scores, h.indices, h.sizes, 0, 0);
    assert.deepEqual(Array.from(h.sizes.toTypedArray<'int32'>()), [3, 3], 'sizes within [0, k] still merge');
  });
});

test('topkHeapOffer refuses heaps of the wrong dtype, layout or device, naming what is wrong', () => {
  torch.tidy(() => {
    const h = heaps();
    const offer = (o: Partial<ReturnType<typeof heaps>>) => () => kernels.topkHeapOffer(o.block ?? h.block, o.scores ?? h.scores, o.indices ?? h.indices, o.sizes ?? h.sizes, 0, 0);
    assert.throws(offer({ scores: h.scores.to('float64') }), /topkHeapOffer\(.*\): heap scores must be a contiguous \[queries, k\] float32 tensor on the CPU/);
    assert.throws(offer({ scores: torch.zeros([3, 2]).transpose(0, 1) }), /topkHeapOffer\(.*\): heap scores must be a contiguous/);
    assert.throws(offer({ scores: torch.zeros([2, 3], { device: 'meta' }) }), /topkHeapOffer\(.*meta.*\): heap scores must be a contiguous \[queries, k\] float32 tensor on the CPU/);
    assert.throws(offer({ indices: torch.zeros([2, 3], { dtype: 'int32', device: 'meta' }) }), /topkHeapOffer\(.*\): heap indices must be a contiguous int32 tensor on the CPU/);
    assert.throws(offer({ indices: torch.zeros([3, 2], { dtype: 'int32' }).transpose(0, 1) }), /topkHeapOffer\(.*\): heap indices must be a contiguous int32 tensor on the CPU/);
    assert.throws(offer({ sizes: torch.zeros([2], { dtype: 'int32', device: 'meta' }) }), /topkHeapOffer\(.*\): heap sizes must be a contiguous int32 \[queries\] tensor on the CPU/);
    assert.throws(offer({ sizes: torch.zeros([2], { dtype: 'int64' }) }), /topkHeapOffer\(.*\): heap sizes must be/);
    assert.throws(offer({ block: torch.randn([2, 4], { device: 'meta' }) }), /topkHeapOffer\(.*\): the block must be a contiguous 2-D float32 CPU tensor/);
  });
});

test('topkHeapOffer refuses block offsets outside the heaps and corpus indices past int32', () => {
  torch.tidy(() => {
    const h = heaps();
    const offer = (q0: number, c0: number) => () => kernels.topkHeapOffer(h.block, h.scores, h.indices, h.sizes, q0, c0);
    assert.throws(offer(-1, 0), /topkHeapOffer\(.*\): block rows fall outside the heaps/);
    assert.throws(offer(1, 0), /topkHeapOffer\(.*\): block rows fall outside the heaps/);
    assert.throws(offer(2 ** 62, 0), /topkHeapOffer\(.*\): block rows fall outside the heaps/);
    assert.throws(offer(0, -1), /topkHeapOffer\(.*\): corpus indices c0 -1 \+ 4 columns do not fit int32/);
    assert.throws(offer(0, 2 ** 31 - 4), /topkHeapOffer\(.*\): corpus indices c0 2147483644 \+ 4 columns do not fit int32/);
    offer(0, 2 ** 31 - 5)();
    for (const i of h.indices.toTypedArray<'int32'>()) assert.ok(i >= 2 ** 31 - 5 && i <= 2 ** 31 - 2, `index ${i}`);
  });
});

test('dropout_linear refuses tensors on two devices, and off the CPU runs the composition instead of reading device memory as host memory', () => {
  torch.tidy(() => {
    const x = torch.randn([2, 3], { device: 'meta' });
    const w = torch.randn([4, 3]);
    assert.throws(() => kernels.dropout_linear(x, w, 0.1), /^Error: dropoutLinear\(.*\): x \(meta\) and weight \(cpu\) must be on one device/);
    assert.throws(() => kernels.dropout_linear(torch.randn([2, 3]), torch.randn([4, 3], { device: 'meta' }), 0.1), /dropoutLinear\(.*\): x \(cpu\) and weight \(meta\) must be on one device/);
    assert.throws(() => kernels.dropout_linear(torch.randn([2, 3]), torch.ones([4, 3], { dtype: 'int64' }), 0.1), /dropoutLinear\(.*\): weight must be a floating-point tensor, got Long/);
    assert.throws(() => kernels.dropout_linear(torch.randn([2, 5]), w, 0.1), /dropoutLinear\(.*\): x \[\.\.\., in\] and weight \[out, in\] do not fit/);
    const y = kernels.dropout_linear(x, torch.randn([4, 3], { device: 'meta' }), 0.1);
    assert.equal(y.device, 'meta');
    assert.deepEqual(y.shape, [2, 4]);
  });
});

test('integers: a BigInt or a double outside int64 is refused by name instead of wrapping (N-API lossless flag) or casting (undefined behaviour)', () => {
  torch.tidy(() => {
    const t = torch.arange(6);
    const narrow = (start: unknown, length: unknown) => () => native.narrow(t.handle, 0, start as number, length as number);
    assert.throws(narrow(0, 2n ** 64n + 2n), /^Error: narrow\(.*\): argument 3 \(a BigInt\) is outside the int64 range/);
    assert.throws(narrow(-(2n ** 63n) - 1n, 2), /narrow\(.*\): argument 2 \(a BigInt\) is outside the int64 range/);
    assert.throws(narrow(0, 2 ** 63), /narrow\(.*\): argument 3 = 9\.22337e\+18 is outside the int64 range/);
    assert.throws(narrow(0, 1e300), /narrow\(.*\): argument 3 = 1e\+300 is outside the int64 range/);
    assert.throws(narrow(0, -(2 ** 64)), /narrow\(.*\): argument 3 = -1\.84467e\+19 is outside the int64 range/);
    assert.throws(narrow(0, 1.5), /narrow\(.*\): argument 3 must be an integer, got 1\.5/);
    assert.deepEqual(new Tensor(native.narrow(t.handle, 0, 1n as unknown as number, 2n as unknown as number)).tolist(), [1, 2], 'BigInts that fit still work');
    assert.throws(() => native.reshape(t.handle, [2 ** 63, 1]), /reshape\(.*\): element 0 of argument 1 = 9\.22337e\+18 is outside the int64 range/);
    assert.throws(() => native.reshape(t.handle, [2n ** 64n as unknown as number]), /reshape\(.*\): element 0 of argument 1 \(a BigInt\) is outside the int64 range/);
    assert.throws(() => native.full([2], 2n ** 64n as unknown as number, undefined, undefined), /full\(.*\): argument 1 \(a BigInt\) is outside the int64 range/);
    assert.throws(() => torch.setNumThreads(2 ** 40), /setNumThreads\(.*\): setNumThreads needs 1 <= n <= 65536/);
  });
});

test('an exception that is not a std::exception still becomes a JS Error naming the op (no std::terminate)', () => {
  assert.throws(() => native.throwNonStdExceptionForTest(), /^Error: throwNonStdExceptionForTest\(\): an unknown C\+\+ exception$/);
});

