// A pipeline killed during training (SIGKILL, or Ctrl-C = SIGINT) after its first checkpoint,
// then run again with the same command, resumes train from its last checkpoint and finishes with
// the same final metrics as a run that was never interrupted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ENV, tinyBeir, tinyPipeline } from './tiny.js';

const STEPS = 24;

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: ENV });
}

/**
 * The checkpoints of the train stage's run (`<run>/checkpoint-N`), if any. Only the two levels are
 * listed, never the trainer's temp folders below them, which it renames away while we look.
 */
function trainCheckpoints(runDir: string): string[] {
  const root = join(runDir, 'train', 'run');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((run) => {
    try {
      return readdirSync(join(root, run)).filter((name) => /^checkpoint-\d+$/.test(name)).map((name) => join(run, name));
    } catch {
      return []; // not a folder, or gone meanwhile
    }
  });
}

/** Starts the pipeline, waits for the first training checkpoint, sends `signal`, and waits for the exit. */
async function interruptAfterFirstCheckpoint(file: string, runDir: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string; checkpointsAtKill: string[] }> {
  const child = spawn(process.execPath, [CLI, 'pipeline', file], { env: ENV });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let checkpointsAtKill: string[] = [];
  for (;;) {
    const found = trainCheckpoints(runDir);
    if (found.length > 0) {
      checkpointsAtKill = found;
      child.kill(signal);
      break;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return { code: await exited, stderr, checkpointsAtKill };
}

function finalMetrics(runDir: string): { eval: unknown; lastEval: unknown } {
  const manifest = JSON.parse(readFileSync(join(runDir, 'train', 'manifest.json'), 'utf8')) as { outputs: { logHistory: Record<string, number>[] } };
  const evals = manifest.outputs.logHistory.filter((r) => 'eval_loss' in r);
  return { eval: JSON.parse(readFileSync(join(runDir, 'eval', 'metrics.json'), 'utf8')), lastEval: evals[evals.length - 1] };
}

test('killed during training (SIGKILL, then SIGINT) and rerun, the pipeline resumes from the last checkpoint and ends with the uninterrupted run\'s metrics', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pipeline-resume-'));
  try {
    const beir = tinyBeir(dir);
    const clean = join(dir, 'clean');
    const file = tinyPipeline(dir, beir, { trainSteps: STEPS });
    const r = embtune('pipeline', file, '--output-dir', clean);
    assert.equal(r.status, 0, r.stderr);
    const expected = finalMetrics(clean);

    for (const signal of ['SIGKILL', 'SIGINT'] as const) {
      const runDir = join(dir, 'run');
      rmSync(runDir, { recursive: true, force: true });
      const killed = await interruptAfterFirstCheckpoint(file, runDir, signal);
      assert.ok(killed.checkpointsAtKill.length > 0, `${signal}: the run reached its first checkpoint (${killed.stderr.slice(-400)})`);
      assert.ok(!existsSync(join(runDir, 'train', 'manifest.json')), `${signal}: the train stage did not finish before the signal`);
      if (signal === 'SIGINT') {
        assert.equal(killed.code, 130, killed.stderr);
        assert.match(killed.stderr, /train was interrupted \(checkpoint .*checkpoint-\d+\); run the same command again/);
      }
      const dry = embtune('pipeline', file, '--dry-run');
      assert.match(dry.stderr, /train\s+resume\s+an unfinished run .* continues from its last checkpoint/);
      assert.match(dry.stderr, /mine\s+skip/);
      const rerun = embtune('pipeline', file);
      assert.equal(rerun.status, 0, rerun.stderr);
      assert.match(rerun.stderr, /train: continuing from run\/v0-[\d-]+\/checkpoint-\d+/);
      assert.match(rerun.stderr, /train: resumed from .*checkpoint-\d+ at step \d+/);
      assert.doesNotMatch(rerun.stderr, /== (split|pretrain|mine) /);
      const manifest = JSON.parse(readFileSync(join(runDir, 'train', 'manifest.json'), 'utf8')) as { resumed: boolean; outputs: { globalStep: number } };
      assert.equal(manifest.resumed, true);
      assert.equal(manifest.outputs.globalStep, STEPS);
      assert.deepEqual(finalMetrics(runDir), expected, `${signal}: the same final metrics as the uninterrupted run`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
