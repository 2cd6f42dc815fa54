// The download progress bar the CLI draws on stderr from resolveModel's onProgress reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgressBar, formatBytes, formatDuration, formatProgressLine } from '../../src/cli/progress.js';
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

test('a progress line shows the bar, percent, bytes, rate, ETA and the file', () => {
  assert.equal(
    formatProgressLine(report({}), 20),
    '[#####---------------]  25%  1.0 MB/4.0 MB  2.0 MB/s  ETA 2s  model.safetensors (2/4)',
  );
  // No rate yet, and no ETA once everything is in.
  assert.equal(formatProgressLine(report({ bytesPerSecond: 0, etaSeconds: undefined }), 4), '[#---]  25%  1.0 MB/4.0 MB  model.safetensors (2/4)');
  assert.match(formatProgressLine(report({ overallBytes: 4_000_000, status: 'done' }), 4), /^\[####\] 100% {2}4\.0 MB\/4\.0 MB {2}2\.0 MB\/s {2}model/);
});

test('on a terminal the bar redraws one line and ends it after the last file; in a log it writes a line per file', () => {
  const tty: string[] = [];
  const onTty = createProgressBar({ isTTY: true, columns: 200, write: (t: string) => tty.push(t) });
  onTty(report({}));
  onTty(report({ status: 'done', fileIndex: 4, fileCount: 4, overallBytes: 4_000_000 }));
  assert.ok(tty.every((t) => t.startsWith('\r') && t.includes('\x1b[K')));
  assert.ok(!tty[0]!.endsWith('\n') && tty[1]!.endsWith('\n'));

  const log: string[] = [];
  const onLog = createProgressBar({ isTTY: false, write: (t: string) => log.push(t) });
  onLog(report({}));
  onLog(report({ status: 'done' }));
  assert.deepEqual(log, ['downloaded acme/bert-tiny/model.safetensors (2.8 MB) [2/4]\n']);
});
