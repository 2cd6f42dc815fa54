// `embtune doctor` reports the engine and proves a forward/backward works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '2' } });
}

test('embtune doctor prints libtorch, devices, threads and passing checks', () => {
  const run = embtune('doctor');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /libtorch\s+\d+\.\d+\.\d+\s+\(\/.+\)/);
  assert.match(run.stdout, /devices\s+cpu/);
  assert.match(run.stdout, /threads\s+2 /);
  assert.match(run.stdout, /ok\s+forward\/backward float32 on cpu/);
  assert.match(run.stdout, /The engine works\./);
});

test('embtune doctor --json gives a machine-readable report', () => {
  const run = embtune('doctor', '--json', '--threads', '1');
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.threads.torch, 1);
  assert.ok(report.devices.includes('cpu'));
  assert.ok(report.checks.length >= 2 && report.checks.every((c: { ok: boolean }) => c.ok));
  assert.equal(typeof report.cuda.compiled, 'boolean');
});

test('embtune doctor rejects a bad --threads with a message', () => {
  const run = embtune('doctor', '--threads', 'zero');
  assert.equal(run.status, 2);
  assert.match(run.stderr, /--threads must be a positive integer/);
});

test('embtune --help documents doctor', () => {
  const run = embtune('--help');
  assert.equal(run.status, 0);
  assert.match(run.stdout, /doctor/);
  assert.match(embtune('doctor', '--help').stdout, /--json[\s\S]*--threads/);
});
