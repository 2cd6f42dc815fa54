// The per-tensor fusion methods (src/merge/fuse_tensors.ts, mergekit's definitions, REFERENCE §13)
// against tensors worked out by hand; fuse(x, x) = x; SLERP's endpoints and collinear fallback;
// DARE's mask statistics; the rank-r factorisation used by PEFT's `svd` combination.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { dareMask, lerp, linear, lowRankFactors, multislerp, slerp, sparsifyMagnitude, taskArithmetic } from '../../src/merge/index.js';
import { symmetricEigen } from '../../src/merge/low_rank.js';
import { assertClose, values } from '../helpers.js';

const t = (v: number[] | number[][]) => torch.tensor(v);
const S = Math.SQRT1_2;

test('linear: Σ wᵢxᵢ / Σ wᵢ by hand, and unnormalised Σ wᵢxᵢ', () => {
  torch.tidy(() => {
    assertClose(linear([t([1, 2]), t([3, 4])], [1, 3]), [2.5, 3.5], { atol: 1e-7 });
    assertClose(linear([t([1, 2]), t([3, 4])], [1, 3], false), [10, 14], { atol: 1e-6 });
  });
});

test('slerp: quarter circle by hand (unequal norms), t = 0 and 1 are the endpoints exactly, and the collinear fallback is the lerp', () => {
  torch.tidy(() => {
    // θ = π/2: s0 = s1 = sin(π/4); the original (un-normalised) tensors are combined.
    assertClose(slerp(0.5, t([1, 0]), t([0, 1])), [S, S], { atol: 1e-7 });
    assertClose(slerp(0.5, t([2, 0]), t([0, 1])), [2 * S, S], { atol: 1e-6 });
    // t = 1/3 of 90°: s0 = sin(60°), s1 = sin(30°).
    assertClose(slerp(1 / 3, t([1, 0]), t([0, 1])), [Math.sqrt(3) / 2, 0.5], { atol: 1e-6 });
    const a = t([[0.3, -1.2], [2.5, 0.7]]);
    const b = t([[-0.9, 0.4], [1.1, -2.2]]);
    assert.deepEqual(values(slerp(0, a, b)), values(a), 't = 0 gives the first tensor exactly');
    assert.deepEqual(values(slerp(1, a, b)), values(b), 't = 1 gives the second exactly');
    // |dot of the unit vectors| > 0.9995: the lerp of the originals (also for antiparallel tensors).
    assertClose(slerp(0.25, t([1, 2]), t([2, 4.001])), [1.25, 2.50025], { atol: 1e-6 });
    assertClose(slerp(0.25, t([1, 2]), t([-2, -4])), [0.25, 0.5], { atol: 1e-6 });
    assert.deepEqual(values(slerp(0.7, a, a)), values(lerp(0.7, a, a)), 'fuse(x, x) takes the collinear path');
    assertClose(slerp(0.7, a, a), a, { atol: 1e-6 }, 'slerp(x, x) = x');
  });
});

test('multislerp: two orthogonal unit vectors give slerp at t = ½, three the normalised mean scaled by the mean norm; antipodal pairs fall back to linear', () => {
  torch.tidy(() => {
    assertClose(multislerp([t([1, 0]), t([0, 1])], [1, 1]), [S, S], { atol: 1e-6 });
    const r3 = 1 / Math.sqrt(3);
    assertClose(multislerp([t([2, 0, 0]), t([0, 2, 0]), t([0, 0, 2])], [1, 1, 1]), [2 * r3, 2 * r3, 2 * r3], { atol: 1e-6 });
    // With a base: task vectors on the sphere, base added back.
    assertClose(multislerp([t([11, 10]), t([10, 11])], [1, 1], t([10, 10])), [10 + S, 10 + S], { atol: 1e-5 });
    assertClose(multislerp([t([1, 0]), t([-1, 0])], [1, 1]), [0, 0], { atol: 1e-7 });
    assert.throws(() => multislerp([t([1, 0]), t([-1, 0]), t([0, 0])], [1, 1, 0]), /weighted mean of the unit tensors is zero/);
    const x = t([[0.3, -1.2], [2.5, 0.7]]);
    assertClose(multislerp([x, x, x], [1, 2, 3]), x, { atol: 1e-6 }, 'multislerp(x, x, x) = x');
  });
});

test('TIES by hand: magnitude trim to density, majority sign of Σ wᵢδᵢ, disjoint mean; λ scales the mix', () => {
  torch.tidy(() => {
    const base = t([10, 10, 10, 10]);
    const x1 = t([11, 8, 13, 10.5]); //   δ1 = [1, −2, 3, 0.5] → top 2 by |δ|: [0, −2, 3, 0]
    const x2 = t([7, 11, 11.5, 10.25]); // δ2 = [−3, 1, 1.5, 0.25] → [−3, 0, 1.5, 0]
    assertClose(sparsifyMagnitude(t([1, -2, 3, 0.5]), 0.5), [0, -2, 3, 0], { atol: 0 });
    // int(0.6·5) = 3 kept; the third-largest magnitude (1) is tied: the first in index order is kept.
    assertClose(sparsifyMagnitude(t([[1, -4], [-1, 2], [1, 0]]), 0.6), [1, -4, 0, 2, 0, 0], { atol: 0 });
    // Σ = [−3, −2, 4.5, 0] → signs [−, −, +, + (0 counts +)]; kept: δ1 at 1, 2; δ2 at 0, 2.
    // mixed = [−3, −2, 4.5, 0] / Σ w·mask [1, 1, 2, 0 → 1] = [−3, −2, 2.25, 0]
    assertClose(taskArithmetic(base, [x1, x2], { method: 'ties', weights: [1, 1], density: 0.5 }), [7, 8, 12.25, 10], { atol: 1e-6 });
    assertClose(taskArithmetic(base, [x1, x2], { method: 'ties', weights: [1, 1], density: 0.5, lambda: 0.5 }), [8.5, 9, 11.125, 10], { atol: 1e-6 });
    // Weights: w = [2, 1] → weighted [0, −4, 6, 0], [−3, 0, 1.5, 0]; Σ [−3, −4, 7.5, 0]; divisor [1, 2, 3, 1].
    assertClose(taskArithmetic(base, [x1, x2], { method: 'ties', weights: [2, 1], density: 0.5 }), [7, 8, 12.5, 10], { atol: 1e-6 });
    // density 1 keeps everything; sign election still drops the minority: Σ = [−2, −1, 4.5, 0.75].
    assertClose(taskArithmetic(base, [x1, x2], { method: 'ties', weights: [1, 1] }), [7, 8, 12.25, 10.375], { atol: 1e-6 });
  });
});

test('DARE by hand with given masks: drop, rescale by 1/density, then sum (dare_linear) or sign-elect (dare_ties), unnormalised by default', () => {
  torch.tidy(() => {
    const base = t([10, 10, 10, 10]);
    const x1 = t([11, 8, 13, 10.5]);
    const x2 = t([7, 11, 11.5, 10.25]);
    const masks = [t([1, 1, 0, 1]).gt(0), t([1, 0, 1, 1]).gt(0)];
    // δ1' = [2, −4, 0, 1], δ2' = [−6, 0, 3, 0.5]
    assertClose(taskArithmetic(base, [x1, x2], { method: 'dare_linear', weights: [1, 1], density: 0.5, masks }), [6, 6, 13, 11.5], { atol: 1e-6 });
    // Σ = [−4, −4, 3, 1.5]: signs [−, −, +, +]; kept δ1 at 1, 3; δ2 at 0, 2, 3 → [−6, −4, 3, 1.5]
    assertClose(taskArithmetic(base, [x1, x2], { method: 'dare_ties', weights: [1, 1], density: 0.5, masks }), [4, 6, 13, 11.5], { atol: 1e-6 });
    assertClose(taskArithmetic(base, [x1, x2], { method: 'dare_ties', weights: [1, 1], density: 0.5, masks, normalize: true }), [4, 6, 13, 10.75], { atol: 1e-6 });
    // The drawn mask keeps ≈ density of the entries, and rescaling keeps the task vector's mean.
    torch.manualSeed(7);
    const kept = dareMask([200_000], 0.3).to('float32').mean().item();
    assert.ok(Math.abs(kept - 0.3) < 0.005, `kept fraction ${kept}`);
  });
});

test('fuse(x, x) = x for TIES and DARE (zero task vectors) and for linear', () => {
  torch.tidy(() => {
    torch.manualSeed(3);
    const x = torch.randn([16, 8]);
    const b = torch.randn([16, 8]);
    for (const method of ['ties', 'dare_ties', 'dare_linear'] as const) {
      assertClose(taskArithmetic(b, [x, x], { method, weights: [0.4, 0.6], density: 1 }), x, { atol: 1e-6 }, method);
    }
    assertClose(taskArithmetic(x, [x, x], { method: 'dare_ties', weights: [1, 1], density: 0.3 }), x, { atol: 0 }, 'zero task vectors over the base');
    assertClose(linear([x, x, x], [1, 2, 3]), x, { atol: 1e-6 });
  });
});

test('rank-r factors: exact for a low-rank delta (error ~0), the measured truncation error otherwise; Jacobi eigenvalues by hand', () => {
  const { values: ev } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
  assertClose(Array.from(ev), [3, 1], { atol: 1e-12 });
  torch.tidy(() => {
    torch.manualSeed(11);
    const delta = torch.randn([48, 6]).matmul(torch.randn([6, 40])); // rank 6
    const exact = lowRankFactors(delta, 6);
    assert.ok(exact.relativeError < 1e-6, `rank 6 of a rank-6 delta: ${exact.relativeError}`);
    assertClose(exact.B.matmul(exact.A), delta, { atol: 1e-4, rtol: 1e-5 });
    const cut = lowRankFactors(delta, 3);
    const measured = Math.sqrt(delta.sub(cut.B.matmul(cut.A)).square().sum().item() / delta.square().sum().item());
    assert.ok(Math.abs(cut.relativeError - measured) < 1e-5, `${cut.relativeError} vs ${measured}`);
    // Eckart–Young: the optimal rank-3 error is √(Σ_{i>3} σᵢ²/Σ σᵢ²) from the rank-6 singular values.
    const s2 = exact.singularValues.slice(0, 6).map((s) => s * s);
    const optimal = Math.sqrt(s2.slice(3).reduce((a, b) => a + b, 0) / s2.reduce((a, b) => a + b, 0));
    assert.ok(Math.abs(cut.relativeError - optimal) < 1e-5, `${cut.relativeError} is the optimum ${optimal}`);
    assert.deepEqual(cut.B.shape, [48, 3]);
    assert.deepEqual(cut.A.shape, [3, 40]);
  });
});
