// The CLI's one progress bar (counted work, training steps, downloads from resolveModel's reports), drawn on stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar, createProgressBar, formatBarLine, formatBytes, formatDuration } from '../../src/cli/progress.js';
import type { DownloadProgress } from '../../src/formats/hub.js';

function report(overrides: Partial<DownloadProgress>): DownloadProgress {
  return {
    status: 'progress',
    repoId: 'acme/bert-tiny',
    file: 'model.safetensors',
    fileIndex: 2,
    fileCount: 4,
    bytes: 1_000_000,
    total: 2_847_120,
    overallBytes: 1_000_000,
    overallTotal: 4_000_000,
    bytesPerSecond: 2_000_000,
    etaSeconds: 1.5,
    ...overrides,
  };
}

test('sizes are decimal like the hub shows them, durations short', () => {
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(2_847_120), '2.8 MB');
  assert.equal(formatBytes(1_500_000_000), '1.5 GB');
  assert.equal(formatDuration(5.4), '5s');
  assert.equal(formatDuration(185), '3m05s');
  assert.equal(formatDuration(7260), '2h01m');
});

test('a bar line shows the label, bar, percent, counts, rate, ETA and the extra text, bytes in decimal units', () => {
  assert.equal(
    formatBarLine('embedding', 'texts', { done: 1024, total: 2500, rate: 312.4 }),
    'embedding [##########--------------]  40%  1,024/2,500 texts  312.4 texts/s  ETA 5s',
  );
  assert.equal(
    formatBarLine('train', 'steps', { done: 40, total: 200, rate: 0.52, extra: 'loss 1.2345  lr 5.90e-6' }, { width: 10 }),
    'train [##--------]  20%  40/200 steps  0.52 steps/s  ETA 5m08s  loss 1.2345  lr 5.90e-6',
  );
  assert.equal(
    formatBarLine('download', '', { done: 1_000_000, total: 4_000_000, rate: 2_000_000, etaSeconds: 1.5, extra: 'model.safetensors (2/4)' }, { width: 20, formatCount: formatBytes }),
    'download [#####---------------]  25%  1.0 MB/4.0 MB  2.0 MB/s  ETA 2s  model.safetensors (2/4)',
  );
  // No rate yet: neither rate nor ETA; done: no ETA.
  assert.equal(formatBarLine('x', 'texts', { done: 1, total: 4, rate: 0 }, { width: 4 }), 'x [#---]  25%  1/4 texts');
  assert.equal(formatBarLine('x', 'texts', { done: 4, total: 4, rate: 8 }, { width: 4 }), 'x [####] 100%  4/4 texts  8.00 texts/s');
});

test('off a terminal a bar writes a line at each tenth of the work, notes as plain lines, and a summary with the time', () => {
  const log: string[] = [];
  const bar = new ProgressBar('embedding', 'texts', { stream: { isTTY: false, write: (t: string) => log.push(t) } });
  for (let done = 1; done <= 100; done++) bar.update(done, 100);
  bar.note('saved checkpoint-10');
  bar.finish('embedded 100 texts');
  const lines = log.filter((l) => l.startsWith('embedding ['));
  assert.equal(lines.length, 11, 'a line at the start and at each tenth (10 %, 20 %, …, 100 %), not one per update');
  assert.match(lines.at(-1)!, /100%  100\/100 texts/);
  assert.deepEqual(log.slice(-2), ['saved checkpoint-10\n', 'embedded 100 texts in 0s\n']);
});

test('on a terminal a bar redraws its line, a note goes above it, and a resumed run leaves its earlier work out of the rate', () => {
  const tty: string[] = [];
  const bar = new ProgressBar('train', 'steps', { stream: { isTTY: true, columns: 200, write: (t: string) => tty.push(t) }, initial: 1_000_000 });
  bar.update(1_000_001, 1_000_010);
  bar.note('eval @ step 1000001: loss 0.5');
  assert.ok(tty[0]!.startsWith('\r') && tty[0]!.endsWith('\x1b[K'));
  assert.doesNotMatch(tty[0]!, /[0-9]{4,} steps\/s/, 'one step since the start, not a million');
  assert.ok(tty[1]!.startsWith('\r\x1b[Keval @ step 1000001: loss 0.5\ntrain ['), 'the note, then the bar again');
});

test('on a terminal the bar redraws one line and ends it after the last file; in a log it writes a line per file', () => {
  const tty: string[] = [];
  const onTty = createProgressBar({ isTTY: true, columns: 200, write: (t: string) => tty.push(t) });
  onTty(report({}));
  onTty(report({ status: 'done', fileIndex: 4, fileCount: 4, overallBytes: 4_000_000 }));
  assert.deepEqual(tty.map((t) => t.startsWith('\r') && t.endsWith('\x1b[K')), [true, true, false], 'two redraws of one line');
  assert.match(tty[0]!, /^\rdownload \[######------------------\]  25%  1\.0 MB\/4\.0 MB  2\.0 MB\/s  ETA 2s  model\.safetensors \(2\/4\)/);
  assert.equal(tty[2], '\n', 'the line ends after the last file');

  const log: string[] = [];
  const onLog = createProgressBar({ isTTY: false, write: (t: string) => log.push(t) });
  onLog(report({}));
  onLog(report({ status: 'done' }));
  assert.deepEqual(log, ['downloaded acme/bert-tiny/model.safetensors (2.8 MB) [2/4]\n']);
});
