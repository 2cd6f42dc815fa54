// Weak pairs from documents (stage one): title → body, and Contriever's independent cropping —
// spans are contiguous pieces of the document whose length is int(units · ratio) with ratio in
// [min, max], drawn independently, seeded (same seed, same pairs), and the pairs are the
// {query, response} records `embtune train` reads as in-batch-only examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeakPairMaker, textUnits, weakPairs } from '../../src/data/weak_pairs.js';
import { exampleFromRecord } from '../../src/train/examples.js';

const DOCS = [
  { _id: 'd1', title: '水稻稻瘟病', text: '稻瘟病是水稻最重要的病害之一，由稻瘟病菌引起，可在秧苗期和抽穗期发生。防治以选用抗病品种为主，辅以药剂防治。' },
  { _id: 'd2', title: 'Crop rotation', text: 'Crop rotation is the practice of growing a series of different types of crops in the same area across a sequence of growing seasons.' },
  { _id: 3, title: '', text: '没有标题的文档也可以用来裁剪出两段文字作为弱监督的正样本对。' },
  { _id: 'd4', title: '空文档', text: '   ' },
];

async function collect(maker: WeakPairMaker, docs: Record<string, unknown>[]) {
  const out = [];
  for await (const p of weakPairs(docs, maker)) out.push(p);
  return out;
}

test('textUnits: every CJK character is a unit, a word keeps its trailing blanks, and the units join back into the text', () => {
  assert.deepEqual(textUnits('水稻 rice field，好'), ['水', '稻 ', 'rice ', 'field', '，', '好']);
  for (const d of DOCS) assert.equal(textUnits(d.text).join(''), d.text);
});

test('title-body: the title is the query, the text the response, doc_id copied; documents without a title or text are skipped and counted', async () => {
  const maker = new WeakPairMaker({ mode: 'title-body' });
  const pairs = await collect(maker, DOCS);
  assert.deepEqual(pairs, [
    { query: '水稻稻瘟病', response: DOCS[0]!.text, doc_id: 'd1' },
    { query: 'Crop rotation', response: DOCS[1]!.text, doc_id: 'd2' },
  ]);
  assert.equal(maker.skippedSummary(), '2 documents skipped (no title: 1, no text: 1)');
});

test('crop: two contiguous spans of the document, each int(units·ratio) long with ratio in [min, max], at least one unit', async () => {
  const maker = new WeakPairMaker({ mode: 'crop', seed: 3, minRatio: 0.2, maxRatio: 0.6 });
  const pairs = await collect(maker, [...DOCS, ...DOCS, ...DOCS]);
  assert.equal(pairs.length, 9);
  for (const p of pairs) {
    const doc = DOCS.find((d) => d._id === p.doc_id || String(d._id) === p.doc_id)!;
    const n = textUnits(doc.text.trim()).length;
    for (const span of [p.query, p.response]) {
      assert.ok(doc.text.includes(span), `'${span}' is a piece of the document`);
      const units = textUnits(span).length;
      assert.ok(units >= Math.max(1, Math.floor(n * 0.2)) && units <= Math.floor(n * 0.6), `${units} units of ${n}`);
    }
  }
  // Independent crops: the two spans of a pair are not the same draw.
  assert.ok(pairs.some((p) => p.query !== p.response));
});

test('crop: the span ratio is uniform on [min, max] (mean and spread over 4,000 draws) and starts cover the document', () => {
  const maker = new WeakPairMaker({ mode: 'crop', seed: 0 });
  const units = Array.from({ length: 1000 }, (_, i) => `w${i} `);
  const ratios: number[] = [];
  const starts = new Set<number>();
  for (let i = 0; i < 4000; i++) {
    const span = maker.crop(units);
    const pieces = textUnits(span);
    ratios.push(pieces.length / 1000);
    starts.add(Number(pieces[0]!.slice(1)));
  }
  const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
  assert.ok(Math.abs(mean - 0.3) < 0.01, `mean ratio ${mean}, expected (0.1 + 0.5) / 2`);
  assert.ok(Math.min(...ratios) >= 0.1 && Math.max(...ratios) < 0.5);
  const variance = ratios.reduce((a, r) => a + (r - mean) ** 2, 0) / ratios.length;
  assert.ok(Math.abs(variance - 0.4 ** 2 / 12) < 0.002, `variance ${variance} of U(0.1, 0.5)`);
  assert.ok(Math.min(...starts) < 20 && Math.max(...starts) > 880, 'starts reach both ends');
});

test('crop is seeded: the same seed gives the same pairs, another seed others', async () => {
  const run = (seed: number) => collect(new WeakPairMaker({ mode: 'crop', seed }), DOCS);
  assert.deepEqual(await run(7), await run(7));
  assert.notDeepEqual(await run(7), await run(8));
});

test('field names are options; bad ratios are refused with the rule', async () => {
  const maker = new WeakPairMaker({ mode: 'title-body', textField: 'body', titleField: 'name', idField: 'id' });
  assert.deepEqual(await collect(maker, [{ id: 'x', name: 'N', body: 'B' }]), [{ query: 'N', response: 'B', doc_id: 'x' }]);
  assert.throws(() => new WeakPairMaker({ mode: 'crop', minRatio: 0.6, maxRatio: 0.5 }), /0 < min-ratio ≤ max-ratio ≤ 1/);
  assert.throws(() => new WeakPairMaker({ mode: 'crop', minRatio: 0 }), /0 < min-ratio/);
});

test('a weak pair is a training example with no hard negatives (in-batch negatives only)', async () => {
  const [pair] = await collect(new WeakPairMaker({ mode: 'title-body' }), DOCS);
  assert.deepEqual(exampleFromRecord(pair!, 'pairs.jsonl:1'), { query: '水稻稻瘟病', positive: DOCS[0]!.text, negatives: [] });
});
