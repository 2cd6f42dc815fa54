/**
 * `embtune train --nproc-per-node N`: the launcher starts torchrun-style workers that train one
 * model together. 2 workers × batch 2 write the adapter that 1 process × batch 4 writes; rank 0
 * alone writes the run folder; a killed worker stops the launch with a non-zero status and the
 * restart from the last checkpoint ends on the uninterrupted run's weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { launchPlan, workerArgv, workerEnv } from '../../src/cli/launch.js';
import { assertClose, FIXTURES, freePort, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const skip = torch.distributed.isAvailable() ? false : 'the addon was built without Gloo (apt-get install -y libgloo-dev)';
const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' };

/** The first `rows` ms-swift records of the mining fixture ({query, response, rejected_response}). */
function dataset(dir: string, rows: number): string {
  const lines = readFileSync(join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl'), 'utf8').trim().split('\n').slice(0, rows);
  const path = join(dir, 'train.jsonl');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** No dropout, no clipping, no held-out split: the runs differ only in how the batch is spread. */
function trainArgs(data: string, out: string, batch: number, steps: number, extra: string[] = []): string[] {
  return [
    CLI, 'train', '--model', QWEN, '--dataset', data, '--output-dir', out, '--split-dataset-ratio', '0',
    '--per-device-train-batch-size', String(batch), '--gradient-accumulation-steps', '1', '--max-steps', String(steps),
    '--lora-dropout', '0', '--max-grad-norm', '0', '--learning-rate', '1e-4', '--max-length', '48', '--truncation-strategy', 'right',
    '--logging-steps', '1', ...extra,
  ];
}

function runFolder(out: string): string {
  const runs = readdirSync(out).filter((n) => /^v\d+-/.test(n));
  assert.equal(runs.length, 1, `one run folder in ${out}: ${runs.join(', ')}`);
  return join(out, runs[0]!);
}

function adapterWeights(checkpoint: string): Map<string, number[]> {
  const tensors = loadSafetensors(join(checkpoint, 'adapter_model.safetensors'));
  const out = new Map([...tensors].map(([k, v]) => [k, Array.from(v.toTypedArray<'float32'>())]));
  torch.dispose([...tensors.values()]);
  return out;
}

// With cross-rank negatives (use_batch, the default) the workers' averaged gradient is 1/2 of one
// process's (data_parallel.ts). AdamW with ε/2 on gradients g/2 takes exactly the step AdamW with ε
// takes on g (m and √v scale with g; no clipping here), so that is the run to compare.
test('embtune train --nproc-per-node 2 (batch 2 each, ε/2) writes the adapter of one process with batch 4, from rank 0 alone', { skip, timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-launch-'));
  try {
    const data = dataset(dir, 12);
    const one = spawnSync(process.execPath, trainArgs(data, join(dir, 'one'), 4, 3, ['--save-steps', '3', '--adam-epsilon', '1e-8']), { env: ENV, encoding: 'utf8' });
    assert.equal(one.status, 0, one.stderr);
    const port = await freePort();
    const two = spawnSync(process.execPath, trainArgs(data, join(dir, 'two'), 2, 3, ['--save-steps', '3', '--adam-epsilon', '5e-9', '--nproc-per-node', '2', '--master-port', String(port)]), { env: ENV, encoding: 'utf8' });
    assert.equal(two.status, 0, two.stderr);
    assert.match(two.stderr, /launching 2 workers on node 0 of 1 \(world size 2/);
    assert.match(two.stderr, /micro-batches on each of 2 ranks/);
    const a = adapterWeights(join(runFolder(join(dir, 'one')), 'checkpoint-3'));
    const run = runFolder(join(dir, 'two'));
    const b = adapterWeights(join(run, 'checkpoint-3'));
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [name, values] of a) assertClose(b.get(name)!, values, { atol: 1e-6 }, name);
    assert.ok([...a].some(([n, v]) => n.includes('lora_B') && v.some((x) => Math.abs(x) > 5e-5)), 'the adapter moved');
    // One log line per step, written once (by rank 0), with the whole batch's loss.
    const logged = readFileSync(join(run, 'logging.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss?: number });
    assert.deepEqual(logged.filter((r) => r.loss !== undefined).map((r) => r.step), [1, 2, 3]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** PIDs of `parent`'s children whose environment has RANK=rank. */
function workerPid(parent: number, rank: number): number | undefined {
  const pids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(parent)], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean).map(Number);
  return pids.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`);
    } catch {
      return false;
    }
  });
}

test('a killed worker stops the launch with an error, and the restart from the last checkpoint ends on the uninterrupted weights', { skip, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-launch-kill-'));
  try {
    const data = dataset(dir, 40);
    const steps = 40;
    const common = ['--save-steps', '4', '--nproc-per-node', '2', '--dataset-shuffle', 'true'];
    const full = spawnSync(process.execPath, trainArgs(data, join(dir, 'full'), 2, steps, [...common, '--master-port', String(await freePort())]), { env: ENV, encoding: 'utf8' });
    assert.equal(full.status, 0, full.stderr);
    const expected = adapterWeights(join(runFolder(join(dir, 'full')), `checkpoint-${steps}`));

    // Kill rank 1 once rank 0 has written checkpoint-8.
    const out = join(dir, 'killed');
    const launcher = spawn(process.execPath, trainArgs(data, out, 2, steps, [...common, '--master-port', String(await freePort())]), { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    launcher.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    let killedAt: string | undefined;
    const started = Date.now();
    while (!killedAt && Date.now() - started < 120_000) {
      await new Promise((r) => setTimeout(r, 50));
      const run = existsSync(out) ? readdirSync(out).find((n) => /^v\d+-/.test(n)) : undefined;
      if (run && existsSync(join(out, run, 'checkpoint-8', 'trainer_state.json'))) {
        const pid = workerPid(launcher.pid!, 1);
        if (pid) {
          process.kill(pid, 'SIGKILL');
          killedAt = join(out, run);
        }
      }
    }
    assert.ok(killedAt, 'saw checkpoint-8 and killed rank 1');
    const code = await exited;
    assert.notEqual(code, 0, 'the launch fails when a worker dies');
    assert.match(stderr, /worker rank 1 \(local 1\) exited with SIGKILL; stopping the others/);
    const checkpoints = readdirSync(killedAt).filter((n) => n.startsWith('checkpoint-')).map((n) => Number(n.slice(11))).sort((x, y) => x - y);
    const last = checkpoints.at(-1)!;
    assert.ok(last >= 8 && last < steps, `stopped before the end (checkpoints ${checkpoints.join(', ')})`);

    const resumed = spawnSync(
      process.execPath,
      trainArgs(data, out, 2, steps, [...common, '--master-port', String(await freePort()), '--resume-from-checkpoint', join(killedAt, `checkpoint-${last}`)]),
      { env: ENV, encoding: 'utf8' },
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    const got = adapterWeights(join(killedAt, `checkpoint-${steps}`));
    for (const [name, values] of expected) assertClose(got.get(name)!, values, { atol: 1e-6 }, name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Ctrl-C to the launcher stops every worker after the same step: rank 0 saves that checkpoint, the launch exits 130', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-launch-int-'));
  try {
    const data = dataset(dir, 40);
    const out = join(dir, 'out');
    const args = trainArgs(data, out, 2, 2000, ['--save-steps', '100000', '--num-train-epochs', '1000', '--nproc-per-node', '2', '--master-port', String(await freePort())]);
    const launcher = spawn(process.execPath, args, { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    launcher.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    const started = Date.now();
    let run: string | undefined;
    // Interrupt once rank 0 has logged a few steps.
    while (Date.now() - started < 60_000) {
      await new Promise((r) => setTimeout(r, 50));
      run = existsSync(out) ? readdirSync(out).find((n) => /^v\d+-/.test(n)) : undefined;
      const log = run ? join(out, run, 'logging.jsonl') : undefined;
      if (log && existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 3) break;
    }
    assert.ok(run, 'training started');
    launcher.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const checkpoints = readdirSync(join(out, run)).filter((n) => n.startsWith('checkpoint-'));
    assert.equal(checkpoints.length, 1, checkpoints.join(', '));
    const step = Number(checkpoints[0]!.slice(11));
    const state = JSON.parse(readFileSync(join(out, run, checkpoints[0]!, 'trainer_state.json'), 'utf8')) as { globalStep: number };
    assert.equal(state.globalStep, step);
    assert.ok(step > 0 && step < 2000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the launch plan follows torchrun and ms-swift: flags, then NPROC_PER_NODE / NNODES / NODE_RANK / MASTER_*; a worker never launches', () => {
  assert.equal(launchPlan({}, {}), undefined);
  assert.equal(launchPlan({ nprocPerNode: '1' }, {}), undefined);
  assert.deepEqual(launchPlan({ nprocPerNode: '4' }, {}), { nprocPerNode: 4, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500 });
  assert.deepEqual(launchPlan({}, { NPROC_PER_NODE: '2', NNODES: '2', NODE_RANK: '1', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234' }), { nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 1234 });
  assert.equal(launchPlan({}, { NPROC_PER_NODE: '2', RANK: '0' }), undefined);
  assert.throws(() => launchPlan({ nprocPerNode: '2', nnodes: '2' }, {}), /--nnodes > 1 needs --master-addr/);
  assert.throws(() => launchPlan({ nprocPerNode: 'two' }, {}), /--nproc-per-node must be an integer/);
  assert.deepEqual(workerArgv(['main.js', 'train', '--nproc-per-node', '2', '--model', 'm', '--master_port=99', '--nnodes', '1', '--seed', '3']), ['main.js', 'train', '--model', 'm', '--seed', '3']);
  const env = workerEnv({ nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: 'h', masterPort: 7 }, 1, { NPROC_PER_NODE: '2' });
  assert.deepEqual(
    { RANK: env.RANK, LOCAL_RANK: env.LOCAL_RANK, WORLD_SIZE: env.WORLD_SIZE, LOCAL_WORLD_SIZE: env.LOCAL_WORLD_SIZE, GROUP_RANK: env.GROUP_RANK, MASTER_ADDR: env.MASTER_ADDR, MASTER_PORT: env.MASTER_PORT, NPROC_PER_NODE: env.NPROC_PER_NODE },
    { RANK: '3', LOCAL_RANK: '1', WORLD_SIZE: '4', LOCAL_WORLD_SIZE: '2', GROUP_RANK: '1', MASTER_ADDR: 'h', MASTER_PORT: '7', NPROC_PER_NODE: undefined },
  );
});
