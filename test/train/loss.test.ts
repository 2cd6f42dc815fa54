// InfoNCE (src/train/loss.ts) against ms-swift: the one-step golden (fixtures/README.md §8), every
// `loss[]` entry of metrics/swift_infonce.json (README §3) — with the one documented divergence —,
// an independent float64 loop implementation of REFERENCE §3.3 for the ≥ 3.10 blocks, and
// finite-difference gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { INFONCE_DEFAULTS, type InfonceOptions, infonceLogits, infonceLoss, infonceOptionsFromEnv } from '../../src/train/loss.js';
import { negativesPerRowFromLabels } from '../../src/train/groups.js';
import { FIXTURES, assertClose, gradcheck, leaf, values } from '../helpers.js';

// ------------------------------------------------------------------ fixture types

interface SwiftLossEntry {
  env: Record<string, string>;
  eval_batch_size: number;
  input_dtype: 'float32' | 'float64';
  batches: number[][];
  per_batch_loss: number[];
  eval_loss_mean: number;
}

interface SwiftSet {
  name: string;
  negatives_per_row: number[];
  embeddings: number[][];
  labels: number[];
  row_slices: [number, number][];
  loss: SwiftLossEntry[];
  metrics: unknown[];
}

const SWIFT: { sets: SwiftSet[] } = JSON.parse(readFileSync(join(FIXTURES, 'metrics/swift_infonce.json'), 'utf8'));

/** The embedding rows and negatives of the collator rows `rows` of a set. */
function batchOf(set: SwiftSet, rows: number[]): { embeddingRows: number[][]; negatives: number[] } {
  return {
    embeddingRows: rows.flatMap((r) => set.embeddings.slice(set.row_slices[r]![0], set.row_slices[r]![1])),
    negatives: rows.map((r) => set.negatives_per_row[r]!),
  };
}

function lossValue(embeddingRows: number[][], negatives: number[], options: InfonceOptions, dtype: 'float32' | 'float64'): number {
  return torch.tidy(() => torch.noGrad(() => infonceLoss(torch.tensor(embeddingRows, { dtype }), { negativesPerRow: negatives }, options).item()));
}

// ------------------------------------------------------------------ independent reference (plain loops, float64)

interface ReferenceOptions {
  temperature: number;
  useBatch: boolean;
  mask: boolean;
  margin: number;
  qq: boolean;
  dd: boolean;
}

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** REFERENCE §3.3 read as ms-swift ≥ 3.10 computes it, one group at a time (no hard-negative count). */
function referenceLoss(rows: number[][], negatives: number[], o: ReferenceOptions): number {
  const groups: { a: number[]; p: number[]; docs: number[][] }[] = [];
  let at = 0;
  for (const n of negatives) {
    groups.push({ a: rows[at]!, p: rows[at + 1]!, docs: rows.slice(at + 1, at + 2 + n) });
    at += 2 + n;
  }
  const allDocs = groups.flatMap((g) => g.docs);
  const starts = groups.map((_, g) => groups.slice(0, g).reduce((s, x) => s + x.docs.length, 0));
  let total = 0;
  groups.forEach((group, g) => {
    let row: number[];
    let target: number;
    if (!o.useBatch) {
      row = group.docs.map((d) => dot(group.a, d));
      target = 0;
    } else {
      target = starts[g]!;
      const qd = allDocs.map((d) => dot(group.a, d));
      const threshold = qd[target]! + o.margin;
      const masked = (v: number) => (o.mask && v > threshold ? -Infinity : v);
      row = qd.map(masked);
      if (o.qq) row.push(...groups.map((other, j) => (j === g ? -Infinity : masked(dot(group.a, other.a)))));
      if (o.dd) row.push(...allDocs.map((d, c) => (c === target ? -Infinity : dot(group.p, d))));
    }
    const scaled = row.map((v) => v / o.temperature);
    const max = Math.max(...scaled);
    const logSum = max + Math.log(scaled.reduce((s, v) => s + Math.exp(v - max), 0));
    total += logSum - scaled[target]!;
  });
  return total / groups.length;
}

// ------------------------------------------------------------------ the one-step golden

test('infonce_step golden: loss with the fake-negative mask on and off, the cosines and the mask itself', () => {
  const golden = loadSafetensors(join(FIXTURES, 'goldens/infonce_step.safetensors'));
  try {
    torch.tidy(() =>
      torch.noGrad(() => {
        const embeddings = golden.get('embeddings')!;
        const labels = Array.from(golden.get('labels')!.toTypedArray<'float32'>());
        assert.deepEqual(negativesPerRowFromLabels(labels), [2, 2, 2]);
        const options = { ...INFONCE_DEFAULTS, temperature: 0.05 };
        for (const [mask, name] of [[true, 'loss_masked'], [false, 'loss_unmasked']] as const) {
          const loss = infonceLoss(embeddings, { labels }, { ...options, maskFakeNegative: mask });
          assertClose([loss.item()], [golden.get(name)!.item()], { rtol: 2e-6 }, name);
        }
        // The two goldens are far apart, so masking the wrong entries could not pass.
        assert.ok(Math.abs(golden.get('loss_masked')!.item() - golden.get('loss_unmasked')!.item()) > 1);
        const unmasked = infonceLogits(embeddings, { labels }, { ...options, maskFakeNegative: false });
        assertClose(unmasked.logits.mul(0.05), golden.get('cos')!, { atol: 1e-6 }, 'cos');
        assert.deepEqual(values(unmasked.targets), values(golden.get('target')!));
        const masked = infonceLogits(embeddings, { labels }, { ...options, maskFakeNegative: true });
        assert.deepEqual(masked.fakeNegatives!.to('uint8').tolist(), golden.get('mask')!.tolist());
      }),
    );
  } finally {
    torch.dispose([...golden.values()]);
  }
});

// ------------------------------------------------------------------ ms-swift v3.8 loss entries

/**
 * The documented divergence: ragged groups + mask + use_batch without a fixed count — ms-swift v3.8
 * takes its per-row loop and does not mask; we mask (REFERENCE §3.3 "Version quirk").
 */
function divergesFromV38(set: SwiftSet, entry: SwiftLossEntry, rows: number[]): boolean {
  const sizes = new Set(rows.map((r) => set.negatives_per_row[r]));
  return (
    entry.env.INFONCE_MASK_FAKE_NEGATIVE === 'True' &&
    entry.env.INFONCE_USE_BATCH === 'True' &&
    entry.env.INFONCE_HARD_NEGATIVES === undefined &&
    sizes.size > 1
  );
}

/**
 * float64 entries: the same algorithm in double precision, 1e-9 relative. float32 entries: logits
 * reach ±100 at T 0.01, so README §3 "Precision" states 2e-4·max(1, |loss|).
 */
function toleranceFor(dtype: 'float32' | 'float64', expected: number): { rtol?: number; atol?: number } {
  return dtype === 'float64' ? { rtol: 1e-9 } : { atol: 2e-4 * Math.max(1, Math.abs(expected)) };
}

test('every loss[] entry of swift_infonce.json: float64 to 1e-9 relative, float32 to its stated tolerance, v3.8 divergence only where documented', () => {
  let checked = 0;
  let divergent = 0;
  let divergentAndDifferent = 0;
  for (const set of SWIFT.sets) {
    for (const entry of set.loss) {
      const options = infonceOptionsFromEnv(entry.env);
      const ours = entry.batches.map((rows, b) => {
        const { embeddingRows, negatives } = batchOf(set, rows);
        const value = lossValue(embeddingRows, negatives, options, entry.input_dtype);
        const expected = entry.per_batch_loss[b]!;
        const what = `${set.name} ${JSON.stringify(entry.env)} bs ${entry.eval_batch_size} ${entry.input_dtype} batch ${b}`;
        const tolerance = toleranceFor(entry.input_dtype, expected);
        if (divergesFromV38(set, entry, rows)) {
          divergent++;
          // v3.8 did not mask here: our unmasked loss is its number …
          const unmasked = lossValue(embeddingRows, negatives, { ...options, maskFakeNegative: false }, entry.input_dtype);
          assertClose([unmasked], [expected], tolerance, `${what} (unmasked)`);
          // … and our masked loss is the masked computation, worked independently.
          const reference = referenceLoss(embeddingRows, negatives, { temperature: options.temperature, useBatch: true, mask: true, margin: 0.1, qq: false, dd: false });
          assertClose([value], [reference], toleranceFor(entry.input_dtype, reference), `${what} (masked reference)`);
          if (Math.abs(value - expected) > 1e-6) divergentAndDifferent++;
        } else {
          assertClose([value], [expected], tolerance, what);
        }
        checked++;
        return value;
      });
      const mean = ours.reduce((s, v) => s + v, 0) / ours.length;
      if (!entry.batches.some((rows) => divergesFromV38(set, entry, rows))) {
        assertClose([mean], [entry.eval_loss_mean], toleranceFor(entry.input_dtype, entry.eval_loss_mean), `${set.name} ${JSON.stringify(entry.env)} bs ${entry.eval_batch_size} eval_loss_mean`);
      }
    }
  }
  assert.equal(checked, SWIFT.sets.reduce((s, set) => s + set.loss.reduce((t, e) => t + e.batches.length, 0), 0));
  assert.ok(divergent > 0, 'the ragged set has unmasked v3.8 batches');
  assert.ok(divergentAndDifferent > 0, 'in some of them the mask changes the loss, so the divergence is real and tested');
});

test('single_negative with INFONCE_HARD_NEGATIVES=3 pads every group with copies of its positive (ms-swift offset), deterministically', () => {
  const set = SWIFT.sets.find((s) => s.name === 'single_negative')!;
  const entry = set.loss.find((e) => e.env.INFONCE_HARD_NEGATIVES === '3' && e.env.INFONCE_USE_BATCH === 'True' && e.input_dtype === 'float64' && e.eval_batch_size === 8)!;
  const options = infonceOptionsFromEnv(entry.env);
  const { embeddingRows, negatives } = batchOf(set, entry.batches[0]!);
  // Whatever the draws, one negative means every pad is row 1 of the group: the positive.
  for (const draw of [0, 0.5, 0.999999]) {
    const value = lossValue(embeddingRows, negatives, { ...options, random: () => draw }, 'float64');
    assertClose([value], [entry.per_batch_loss[0]!], { rtol: 1e-9 }, `draw ${draw}`);
  }
  // The same groups written out by hand as [a, p, n, p, p] with no count give the same loss.
  const expanded = set.row_slices.flatMap(([start]) => {
    const [a, p, n] = set.embeddings.slice(start, start + 3) as [number[], number[], number[]];
    return [a, p, n, p, p];
  });
  const byHand = lossValue(expanded, new Array(8).fill(3), { ...options, hardNegatives: null }, 'float64');
  assertClose([byHand], [entry.per_batch_loss[0]!], { rtol: 1e-9 }, 'expanded by hand');
  // Padding from the own negatives instead ([a, p, n, n, n]) is a different loss.
  const ownNegatives = lossValue(embeddingRows, negatives, { ...options, hardNegativePadding: 'negatives' }, 'float64');
  assert.ok(Math.abs(ownNegatives - byHand) > 1e-3, `'negatives' padding differs (${ownNegatives} vs ${byHand})`);
});

// ------------------------------------------------------------------ ≥ 3.10 blocks and masking against the reference

test('QQ and DD blocks, with and without the mask, equal the loop reference on ragged groups', () => {
  const set = SWIFT.sets.find((s) => s.name === 'ragged')!;
  const { embeddingRows, negatives } = batchOf(set, [0, 1, 2, 3, 4, 5, 6, 7]);
  const distinct = new Set<number>();
  for (const qq of [false, true]) {
    for (const dd of [false, true]) {
      for (const mask of [false, true]) {
        for (const temperature of [0.05, 0.1]) {
          const options: InfonceOptions = { ...INFONCE_DEFAULTS, temperature, includeQQ: qq, includeDD: dd, maskFakeNegative: mask };
          const value = lossValue(embeddingRows, negatives, options, 'float64');
          const expected = referenceLoss(embeddingRows, negatives, { temperature, useBatch: true, mask, margin: 0.1, qq, dd });
          assertClose([value], [expected], { rtol: 1e-10 }, `qq ${qq} dd ${dd} mask ${mask} T ${temperature}`);
          distinct.add(Math.round(value * 1e9));
        }
      }
    }
  }
  assert.equal(distinct.size, 16, 'each combination gives its own loss, so each block is exercised');
});

test('use_batch off: each anchor sees only its own group, and the mask does not apply (as in ms-swift)', () => {
  const set = SWIFT.sets.find((s) => s.name === 'ragged')!;
  const { embeddingRows, negatives } = batchOf(set, [0, 1, 2, 3, 4, 5, 6, 7]);
  for (const mask of [false, true]) {
    const options: InfonceOptions = { ...INFONCE_DEFAULTS, temperature: 0.05, useBatch: false, maskFakeNegative: mask };
    const expected = referenceLoss(embeddingRows, negatives, { temperature: 0.05, useBatch: false, mask: false, margin: 0.1, qq: false, dd: false });
    assertClose([lossValue(embeddingRows, negatives, options, 'float64')], [expected], { rtol: 1e-10 }, `mask ${mask}`);
  }
});

test('the fake-negative margin: strict >, on the raw dot product, against the detached positive', () => {
  // One anchor, its positive at cos 0.5 and a negative at exactly 0.5 + margin: kept (strict >).
  const margin = 0.25;
  const a = [1, 0];
  const p = [0.5, Math.sqrt(1 - 0.25)];
  const atThreshold = [0.75, Math.sqrt(1 - 0.75 ** 2)];
  const above = [0.76, Math.sqrt(1 - 0.76 ** 2)];
  const options: InfonceOptions = { ...INFONCE_DEFAULTS, temperature: 0.1, maskFakeNegative: true, fakeNegMargin: margin };
  torch.tidy(() => {
    const kept = infonceLogits(torch.tensor([a, p, atThreshold], { dtype: 'float64' }), { negativesPerRow: [1] }, options);
    assert.deepEqual(kept.fakeNegatives!.tolist(), [[false, false]]);
    const dropped = infonceLogits(torch.tensor([a, p, above], { dtype: 'float64' }), { negativesPerRow: [1] }, options);
    assert.deepEqual(dropped.fakeNegatives!.tolist(), [[false, true]]);
    assert.equal(values(dropped.logits)[1], -Infinity);
    // With the only negative masked, the positive is alone in the softmax: loss 0.
    assert.equal(F.cross_entropy(dropped.logits, dropped.targets).item(), 0);
  });
});

// ------------------------------------------------------------------ gradients

const GRADIENT_CASES: [string, Partial<InfonceOptions>, number[]][] = [
  ['use_batch, mask, ragged groups', { maskFakeNegative: true }, [2, 1, 3]],
  ['use_batch, mask, QQ and DD', { maskFakeNegative: true, includeQQ: true, includeDD: true }, [2, 1, 3]],
  ['use_batch off', { useBatch: false }, [2, 1, 3]],
  ['fixed count with truncation and padding', { hardNegatives: 2, maskFakeNegative: true }, [1, 3, 2]],
];

for (const [name, overrides, negatives] of GRADIENT_CASES) {
  test(`InfoNCE gradient w.r.t. the embeddings matches central finite differences in float64 (${name})`, () => {
    const rows = negatives.reduce((s, n) => s + 2 + n, 0);
    const x = leaf([rows, 6], 500 + rows);
    const options: InfonceOptions = { ...INFONCE_DEFAULTS, temperature: 0.2, ...overrides };
    // Unit vectors, as the pooling hands them over; the loss itself does not normalise.
    const error = gradcheck((e) => infonceLoss(F.normalize(e, 2, 1), { negativesPerRow: negatives }, options), [x]);
    x.dispose();
    assert.ok(error < 1e-6, `relative error ${error}`);
  });
}

test('the masked fake negative gets no gradient, the kept negative does', () => {
  torch.tidy(() => {
    const a = [1, 0];
    const p = [0.5, Math.sqrt(0.75)];
    const fake = [0.9, Math.sqrt(1 - 0.81)];
    const n = [0.1, Math.sqrt(0.99)];
    const e = torch.tensor([a, p, fake, n], { dtype: 'float64', requiresGrad: true });
    infonceLoss(e, { negativesPerRow: [2] }, { ...INFONCE_DEFAULTS, temperature: 0.1, maskFakeNegative: true }).backward();
    const grad = e.grad!.tolist() as number[][];
    assert.deepEqual(grad[2], [0, 0], 'the masked fake negative');
    assert.ok(Math.abs(grad[3]![0]!) > 0, 'the kept negative has a gradient');
  });
});

// ------------------------------------------------------------------ options

test('infonceOptionsFromEnv: defaults, ms-swift parsing, overrides win', () => {
  const defaults = infonceOptionsFromEnv({});
  assert.equal(defaults.temperature, 0.01, 'ms-swift ≤ 3.10 default (the tutorial), Gotcha 2');
  assert.equal(defaults.useBatch, true);
  assert.equal(defaults.hardNegatives, null);
  assert.equal(defaults.maskFakeNegative, false);
  assert.equal(defaults.fakeNegMargin, 0.1);
  assert.equal(defaults.includeQQ, false);
  assert.equal(defaults.includeDD, false);

  const parsed = infonceOptionsFromEnv({
    INFONCE_TEMPERATURE: ' 5e-2 ',
    INFONCE_USE_BATCH: 'OFF',
    INFONCE_HARD_NEGATIVES: '1_0',
    INFONCE_MASK_FAKE_NEGATIVE: 'Yes',
    INFONCE_FAKE_NEG_MARGIN: '.2',
    INFONCE_INCLUDE_QQ: 't',
    INFONCE_INCLUDE_DD: '1',
  });
  assert.deepEqual(
    { ...parsed },
    { ...INFONCE_DEFAULTS, temperature: 0.05, useBatch: false, hardNegatives: 10, maskFakeNegative: true, fakeNegMargin: 0.2, includeQQ: true, includeDD: true },
  );
  const overridden = infonceOptionsFromEnv({ INFONCE_TEMPERATURE: '0.05', INFONCE_MASK_FAKE_NEGATIVE: 'true' }, { temperature: 0.1, maskFakeNegative: undefined });
  assert.equal(overridden.temperature, 0.1, 'a flag wins over the environment');
  assert.equal(overridden.maskFakeNegative, true, 'an undefined override keeps the environment value');
  const fromConfig = infonceOptionsFromEnv({}, { temperature: 0.05, learningRate: 6e-6 } as Partial<InfonceOptions>);
  assert.equal('learningRate' in fromConfig, false, 'keys that are not loss options are ignored');
  assert.equal(fromConfig.temperature, 0.05);
});

test('infonceOptionsFromEnv: a value that does not parse or cannot work names its variable', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ INFONCE_USE_BATCH: 'maybe' }, /INFONCE_USE_BATCH="maybe" is not a boolean/],
    [{ INFONCE_USE_BATCH: 'true ' }, /INFONCE_USE_BATCH/],
    [{ INFONCE_TEMPERATURE: '' }, /INFONCE_TEMPERATURE="" is not a number/],
    [{ INFONCE_TEMPERATURE: '0x10' }, /INFONCE_TEMPERATURE/],
    [{ INFONCE_TEMPERATURE: '0' }, /temperature must be a finite number > 0/],
    [{ INFONCE_TEMPERATURE: 'inf' }, /temperature must be a finite number > 0/],
    [{ INFONCE_HARD_NEGATIVES: '2.5' }, /INFONCE_HARD_NEGATIVES="2.5" is not an integer/],
    [{ INFONCE_HARD_NEGATIVES: '-1' }, /hard negatives must be an integer ≥ 0/],
    [{ INFONCE_FAKE_NEG_MARGIN: '-0.1' }, /margin must be a finite number ≥ 0/],
  ];
  for (const [env, message] of cases) assert.throws(() => infonceOptionsFromEnv(env), message, JSON.stringify(env));
});

test('bad batches are errors that say what is wrong', () => {
  torch.tidy(() => {
    const e = torch.randn([7, 4]);
    const options = { ...INFONCE_DEFAULTS };
    assert.throws(() => infonceLoss(e, { negativesPerRow: [1, 1] }, options), /\[1, 1\] negatives need 6 embeddings .* got 7/);
    assert.throws(() => infonceLoss(e, { labels: [0, 1, 0] }, options), /entry 0 is a negative before any positive/);
    assert.throws(() => infonceLoss(e, { labels: [0, 0] }, options), /entry 0 is a negative before any positive/);
    assert.throws(() => infonceLoss(e, { negativesPerRow: [3, 0] }, { ...options, hardNegatives: 2 }), /row 1 has no negative/);
    assert.throws(() => infonceLoss(e.reshape(-1), { negativesPerRow: [5] }, options), /must be \[rows, dim\]/);
    assert.throws(() => infonceLoss(e, { negativesPerRow: [5] }, { ...options, temperature: -1 }), /temperature/);
  });
});

test('every tensor made by the loss is freed; only the returned scalar lives', () => {
  const e = torch.keep(torch.randn([10, 8], { requiresGrad: true }));
  const before = torch.liveTensors();
  const loss = infonceLoss(e, { negativesPerRow: [3, 3] }, { ...INFONCE_DEFAULTS, maskFakeNegative: true, includeQQ: true, includeDD: true });
  assert.equal(torch.liveTensors(), before + 1);
  loss.backward();
  loss.dispose();
  e.dispose();
  assert.ok(loss instanceof Tensor);
});
