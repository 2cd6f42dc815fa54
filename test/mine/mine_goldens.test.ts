// mineHardNegatives against every golden of fixtures/mining and fixtures/mining/edge, for both
// sentence-transformers releases (v5.1.2 and v6.0.0): columns, row count, every row (strings and
// labels exact, scores within 1e-6), stdout line by line (the eight statistic lines per
// README §7), the logged warnings, and the errors. The random case has its own test
// (mine_random.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mineHardNegatives } from '../../src/mine/index.js';
import { EDGE, MINING, capture, loadCase, loadFolder, optionsFor, stdoutLines, type Captured, type GoldenCase, type MiningFolder, type NearBoundary } from './mining_fixtures.js';

const SCORE_TOLERANCE = 1e-6;
/** README §7: a flagged statistic may differ by one unit in the 4th decimal. */
const FLAGGED_TOLERANCE = 5e-5 + 1e-6;
const STATISTICS = new Set(['Mean', 'Median', 'Std', 'Min', '25%', '50%', '75%', 'Max']);
const TABLE_COLUMNS = ['Positive', 'Negative', 'Difference'] as const;
const SCORE_COLUMNS = new Set(['scores', 'score']);

function assertCell(actual: unknown, expected: unknown, where: string, isScore: boolean): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected a list, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: list length`);
    expected.forEach((e, i) => assertCell(actual[i], e, `${where}[${i}]`, isScore));
  } else if (isScore) {
    assert.equal(typeof actual, 'number', `${where}: expected a score`);
    assert.ok(Math.abs((actual as number) - (expected as number)) <= SCORE_TOLERANCE, `${where}: score ${String(actual)}, expected ${String(expected)}`);
  } else {
    assert.strictEqual(actual, expected, `${where}`);
  }
}

function assertRows(rows: Record<string, unknown>[], golden: NonNullable<GoldenCase['output']>, name: string): void {
  assert.equal(rows.length, golden.num_rows, `${name}: num_rows`);
  golden.rows.forEach((expected, r) => {
    const actual = rows[r]!;
    assert.deepEqual(Object.keys(actual), golden.columns, `${name}: row ${r} keys`);
    for (const column of golden.columns) assertCell(actual[column], expected[column], `${name}: row ${r} column ${column}`, SCORE_COLUMNS.has(column));
  });
}

/** Compares one printed statistic value: exactly, or within README §7's tolerance when flagged. */
function assertStatistic(actual: string, expected: string, flagged: boolean, where: string): void {
  if (!flagged || !Number.isFinite(Number(expected))) {
    assert.equal(actual, expected, where);
    return;
  }
  assert.ok(Math.abs(Number(actual) - Number(expected)) <= FLAGGED_TOLERANCE, `${where}: ${actual}, expected ${expected} (flagged near a rounding boundary)`);
}

function assertStatisticLine(actual: string, expected: string, flags: NearBoundary[], where: string): void {
  const label = expected.split(/\s+/)[0]!;
  const flaggedColumns = new Set(flags.filter((f) => f.statistic === label).map((f) => f.column));
  if (flaggedColumns.size === 0) {
    assert.equal(actual, expected, where);
    return;
  }
  const actualFields = actual.trim().split(/\s+/);
  const expectedFields = expected.trim().split(/\s+/);
  assert.equal(actualFields.length, 4, `${where}: ${JSON.stringify(actual)} should have a label and three values`);
  assert.equal(actualFields[0], label, `${where}: label`);
  TABLE_COLUMNS.forEach((column, i) => assertStatistic(actualFields[i + 1]!, expectedFields[i + 1]!, flaggedColumns.has(column), `${where} ${column}`));
}

function assertStdout(captured: Captured, golden: GoldenCase, name: string): void {
  const expected = stdoutLines(golden.stdout);
  assert.equal(captured.lines.length, expected.length, `${name}: stdout has ${captured.lines.length} lines, expected ${expected.length}:\n${captured.lines.join('\n')}`);
  const flags = golden.check?.near_rounding_boundary ?? [];
  expected.forEach((line, i) => {
    const where = `${name}: stdout line ${i + 1}`;
    if (STATISTICS.has(line.split(/\s+/)[0]!)) assertStatisticLine(captured.lines[i]!, line, flags, where);
    else assert.equal(captured.lines[i], line, where);
  });
}

async function checkCase(folder: MiningFolder, golden: GoldenCase, options: ReturnType<typeof optionsFor>): Promise<void> {
  const name = `${golden.tag}/${golden.case}`;
  const { captured, sinks } = capture();
  const run = mineHardNegatives({ columns: folder.columns, rows: folder.rows }, folder.encoder, { ...options, ...sinks });
  if (golden.error) {
    const error = await run.then(
      () => assert.fail(`${name}: expected ${golden.error!.type}: ${golden.error!.message}`),
      (e: unknown) => e as Error,
    );
    if (golden.error.type === 'ValueError') assert.equal(error.message, golden.error.message, `${name}: error message`);
    else assert.ok(error.message.includes(golden.error.message), `${name}: error '${error.message}' should say '${golden.error.message}'`);
  } else {
    const result = await run;
    assert.deepEqual(result.columns, golden.output!.columns, `${name}: columns`);
    assertRows(result.rows, golden.output!, name);
  }
  assertStdout(captured, golden, name);
  assert.deepEqual(captured.warnings, golden.warnings, `${name}: warnings`);
}

for (const [title, root] of [
  ['fixtures/mining', MINING],
  ['fixtures/mining/edge', EDGE],
] as const) {
  const folder = loadFolder(root);
  const deterministic = folder.index.filter((entry) => !entry.random);
  for (const tag of ['v5.1.2', 'v6.0.0'] as const) {
    test(`${title} ${tag}: every case reproduces rows, stdout, warnings and errors`, async (t) => {
      const entries = deterministic.filter((entry) => entry.tag === tag);
      assert.ok(entries.length >= 5, `${title} ${tag}: only ${entries.length} cases found`);
      for (const entry of entries) {
        await t.test(entry.case, async () => {
          const golden = loadCase(folder, entry);
          assert.equal(golden.case, entry.case);
          await checkCase(folder, golden, optionsFor(folder, entry));
        });
      }
    });
  }
}
