// sampling_strategy 'random' (fixtures/mining/README.md §6, case r_random_a): Python's sampling is
// unseeded, so the golden records invariants. For several seeds: exactly the listed pairs, each
// with min(numNegatives, eligible) distinct negatives drawn from its eligible negatives in their
// order, the deterministic stdout lines and the Positive column; the same seed gives the same
// output, and different seeds give different outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mineHardNegatives, type MiningResult } from '../../src/mine/index.js';
import { MINING, capture, loadCase, loadFolder, optionsFor, type MiningFolder, type CaseIndexEntry, type RandomInvariants } from './mining_fixtures.js';

const SEEDS = [0, 1, 2, 7, 12345];

async function runWithSeed(folder: MiningFolder, entry: CaseIndexEntry, seed: number): Promise<{ result: MiningResult; lines: string[] }> {
  const { captured, sinks } = capture();
  const result = await mineHardNegatives({ columns: folder.columns, rows: folder.rows }, folder.encoder, { ...optionsFor(folder, entry), seed, ...sinks });
  assert.deepEqual(captured.warnings, []);
  return { result, lines: captured.lines };
}

function isSubsequence(items: string[], of: string[]): boolean {
  let at = 0;
  for (const item of items) {
    at = of.indexOf(item, at);
    if (at < 0) return false;
    at++;
  }
  return true;
}

function assertInvariants(result: MiningResult, lines: string[], invariants: RandomInvariants, where: string): void {
  assert.deepEqual(result.columns, ['prompt', 'response', 'labels'], `${where}: columns`);
  assert.equal(result.rows.length, invariants.rows.length, `${where}: rows`);
  invariants.rows.forEach((expected, i) => {
    const row = result.rows[i]!;
    const [positive, ...negatives] = row.response as string[];
    assert.equal(row.prompt, expected.prompt, `${where}: row ${i} prompt`);
    assert.equal(positive, expected.positive, `${where}: row ${i} positive`);
    assert.equal(negatives.length, expected.expected_num_negatives, `${where}: row ${i} negative count`);
    assert.equal(new Set(negatives).size, negatives.length, `${where}: row ${i} has repeated negatives`);
    assert.ok(isSubsequence(negatives, expected.eligible_negatives), `${where}: row ${i} negatives are not eligible ones in score order`);
    assert.deepEqual(row.labels, [1, ...negatives.map(() => 0)], `${where}: row ${i} labels`);
  });
  for (const line of invariants.deterministic_stdout_lines) assert.ok(lines.includes(line), `${where}: stdout lacks ${JSON.stringify(line)}`);
  for (const prefix of invariants.positive_column_prefixes) {
    assert.ok(lines.some((line) => line.startsWith(prefix)), `${where}: no statistics line starts with ${JSON.stringify(prefix)}`);
  }
}

const folder = loadFolder(MINING);

for (const entry of folder.index.filter((e) => e.random)) {
  test(`${entry.tag} ${entry.case}: random sampling keeps the invariants for several seeds, reproducibly`, async () => {
    const { random_sampling_invariants: invariants } = loadCase<{ random_sampling_invariants: RandomInvariants }>(folder, entry);
    const outputs = new Set<string>();
    for (const seed of SEEDS) {
      const first = await runWithSeed(folder, entry, seed);
      assertInvariants(first.result, first.lines, invariants, `${entry.tag} seed ${seed}`);
      const again = await runWithSeed(folder, entry, seed);
      assert.deepEqual(again.result.rows, first.result.rows, `seed ${seed}: a second run gave other rows`);
      assert.deepEqual(again.lines, first.lines, `seed ${seed}: a second run printed other lines`);
      outputs.add(JSON.stringify(first.result.rows));
    }
    assert.equal(outputs.size, SEEDS.length, 'different seeds should draw different negatives');
  });
}
