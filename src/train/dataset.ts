/**
 * Training data: files of ms-swift embedding records → TrainExamples, and the held-out split of
 * `--split-dataset-ratio` (REFERENCE §3.4: val = max(floor(rows·ratio), 1), split with
 * datasets' `train_test_split` — here seeded with data_seed directly; ms-swift draws the split
 * seed from a NumPy RandomState, which a TypeScript run does not reproduce).
 */
import { trainTestSplit } from '../data/split.js';
import { readRecords } from '../data/records.js';
import { ExampleError, exampleFromRecord, type TrainExample } from './examples.js';

export type OnError = 'stop' | 'skip';

export async function loadTrainExamples(files: string[], read: { onError: OnError; tsvQuoting?: boolean }, say: (line: string) => void = () => {}): Promise<TrainExample[]> {
  const { onError } = read;
  const out: TrainExample[] = [];
  for (const file of files) {
    let skipped = 0;
    let first: string | undefined;
    const reader = readRecords(file, { onError, tsvQuoting: read.tsvQuoting });
    for await (const { row, line, record } of reader) {
      try {
        out.push(exampleFromRecord(record, `${file}:${line ?? `row ${row}`}`));
      } catch (err) {
        if (!(err instanceof ExampleError) || onError === 'stop') throw err;
        skipped += 1;
        first ??= err.message;
      }
    }
    skipped += reader.skipped.count;
    if (skipped > 0) say(`${file}: skipped ${skipped.toLocaleString('en-US')} malformed rows (first: ${reader.skipped.examples[0]?.message ?? first})`);
  }
  if (out.length === 0) throw new Error(`no training rows in ${files.join(', ')}`);
  return out;
}

export function splitExamples(examples: TrainExample[], ratio: number, seed: number): { train: TrainExample[]; evalSet: TrainExample[] } {
  if (ratio <= 0) return { train: examples, evalSet: [] };
  const count = Math.max(Math.floor(examples.length * ratio), 1);
  if (count >= examples.length) throw new Error(`--split-dataset-ratio ${ratio} leaves no training rows out of ${examples.length}`);
  const { train, test } = trainTestSplit(examples, { testSize: { count }, seed });
  return { train, evalSet: test };
}
