/**
 * torch.distributed over c10d Gloo, proved with real processes on loopback: each rank is a
 * separate `node` running distributed_worker.js, rendezvousing through a TCPStore (env://,
 * tcp://) or a FileStore (file://).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { resolveRendezvous } from '../../src/torch/distributed.js';
import type { Scenario } from './distributed_worker.js';
import { freePort } from '../helpers.js';

const WORKER = fileURLToPath(new URL('./distributed_worker.js', import.meta.url));
const available = torch.distributed.isAvailable();
const skip = available ? false : 'the addon was built without Gloo (apt-get install -y libgloo-dev, then npm run build:native)';

interface RankRun {
  rank: number;
  lines: Record<string, unknown>[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

interface Launch {
  scenario: (rank: number) => Scenario;
  env?: (rank: number) => Record<string, string>;
  /** Called once every rank has printed {ready: true}, with a way to kill one. */
  onAllReady?: (kill: (rank: number) => void) => void;
  /** Hard limit per process: a hang fails the test instead of stalling the suite. */
  limitMs: number;
}

/** Starts `n` ranks and resolves when all have exited (each killed past limitMs). */
function runRanks(n: number, launch: Launch): Promise<RankRun[]> {
  const ready = new Set<number>();
  const children = Array.from({ length: n }, (_, rank) =>
    spawn(process.execPath, [WORKER], {
      env: { ...process.env, EMBTUNE_NUM_THREADS: '1', EMBTUNE_DIST_SCENARIO: JSON.stringify(launch.scenario(rank)), ...launch.env?.(rank) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const kill = (rank: number): void => void children[rank]!.kill('SIGKILL');
  return Promise.all(
    children.map(
      (child, rank) =>
        new Promise<RankRun>((resolve) => {
          const run: RankRun = { rank, lines: [], code: null, signal: null, stderr: '' };
          let buffered = '';
          const limit = setTimeout(() => child.kill('SIGKILL'), launch.limitMs);
          child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
            buffered += chunk;
            let nl: number;
            while ((nl = buffered.indexOf('\n')) >= 0) {
              const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
              buffered = buffered.slice(nl + 1);
              run.lines.push(line);
              if (line.ready === true) {
                ready.add(rank);
                if (ready.size === n) launch.onAllReady?.(kill);
              }
            }
          });
          child.stderr.setEncoding('utf8').on('data', (chunk: string) => (run.stderr += chunk));
          child.on('exit', (code, signal) => {
            clearTimeout(limit);
            run.code = code;
            run.signal = signal;
            resolve(run);
          });
        }),
    ),
  );
}

/** What `collectives()` in the worker must print on rank r of a world of w, worked by hand. */
function expected(r: number, w: number): Record<string, unknown> {
  const tri = (w * (w + 1)) / 2; // Σ (r+1)
  return {
    rank: r,
    worldSize: w,
    initialized: true,
    sum: [tri, 10 * tri, -(w * (w - 1)) / 2],
    avg: [(w - 1) / 2, w - 1],
    max: [w - 1, 0],
    gathered: Array.from({ length: w }, (_, k) => [k, 100 + k]),
    gatheredIntoTensor: Array.from({ length: w }, (_, k) => [[k], [0 - k]]).flat(), // 0 - k: JSON has no -0
    broadcast: [w - 1, w - 1, w - 1],
    barrier: true,
    initializedAfterDestroy: false,
  };
}

function assertCollectives(runs: RankRun[], w: number): void {
  for (const run of runs) {
    assert.equal(run.code, 0, `rank ${run.rank} exited ${run.code ?? run.signal}: ${run.stderr}`);
    assert.deepEqual(run.lines, [expected(run.rank, w)], `rank ${run.rank}`);
  }
}

test('two processes over env:// (torchrun variables): all-reduce, all-gather, broadcast and barrier give the exact tensors', { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const runs = await runRanks(2, {
    scenario: () => ({ kind: 'collectives', initMethod: 'env://', timeoutMs: 20_000 }),
    env: (rank) => ({ RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) }),
    limitMs: 45_000,
  });
  assertCollectives(runs, 2);
});

test('four processes on one machine over tcp:// give the exact tensors', { skip, timeout: 90_000 }, async () => {
  const port = await freePort();
  const runs = await runRanks(4, {
    scenario: (rank) => ({ kind: 'collectives', initMethod: `tcp://127.0.0.1:${port}`, rank, worldSize: 4, timeoutMs: 30_000 }),
    limitMs: 75_000,
  });
  assertCollectives(runs, 4);
});

test('FileStore rendezvous (file://) gives the exact tensors', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-dist-'));
  try {
    const runs = await runRanks(2, {
      scenario: (rank) => ({ kind: 'collectives', initMethod: `file://${join(dir, 'store')}`, rank, worldSize: 2, timeoutMs: 20_000 }),
      limitMs: 45_000,
    });
    assertCollectives(runs, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a killed rank makes the others fail all-reduce with an error naming the operation, well within the timeout', { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const timeoutMs = 10_000;
  const runs = await runRanks(3, {
    scenario: (rank) => ({ kind: 'die', initMethod: `tcp://127.0.0.1:${port}`, rank, worldSize: 3, timeoutMs, victim: 2 }),
    // The survivors are inside (or entering) the all-reduce when rank 2 dies.
    onAllReady: (kill) => setTimeout(() => kill(2), 300),
    limitMs: 40_000,
  });
  assert.equal(runs[2]!.signal, 'SIGKILL');
  for (const run of runs.slice(0, 2)) {
    assert.equal(run.code, 0, `rank ${run.rank}: ${run.stderr}`);
    const last = run.lines.at(-1) as { error: string | null; ms: number };
    assert.ok(last.error, `rank ${run.rank} should have failed`);
    assert.match(last.error, /^distributed\.allReduce\(Tensor\[4\] Float, 'sum'\): rank [01] of 3: /);
    // A dead peer closes its sockets, so Gloo notices at once instead of waiting out the timeout.
    assert.match(last.error, /peer/i);
    assert.ok(last.ms < timeoutMs, `rank ${run.rank} took ${last.ms} ms (timeout ${timeoutMs} ms)`);
  }
});

test('a rank that never joins the all-reduce makes the others fail with a timeout error naming the operation', { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const timeoutMs = 2000;
  const runs = await runRanks(2, {
    scenario: (rank) => ({ kind: 'hang', initMethod: `tcp://127.0.0.1:${port}`, rank, worldSize: 2, timeoutMs, victim: 1 }),
    limitMs: 30_000,
  });
  const survivor = runs[0]!;
  assert.equal(survivor.code, 0, survivor.stderr);
  const last = survivor.lines.at(-1) as { error: string | null; ms: number };
  assert.ok(last.error, 'rank 0 should have failed');
  assert.match(last.error, /^distributed\.allReduce\(Tensor\[4\] Float, 'sum'\): rank 0 of 2: /);
  assert.match(last.error, /timed out/i);
  assert.ok(last.ms >= timeoutMs - 100 && last.ms < timeoutMs + 3000, `failed after ${last.ms} ms (timeout ${timeoutMs} ms)`);
});

test('initProcessGroup fails with a clear error when a rank never arrives at the rendezvous', { skip, timeout: 30_000 }, async () => {
  const port = await freePort();
  const started = Date.now();
  const [run] = await runRanks(1, {
    scenario: () => ({ kind: 'collectives', initMethod: `tcp://127.0.0.1:${port}`, rank: 0, worldSize: 2, timeoutMs: 1500 }),
    limitMs: 20_000,
  });
  assert.notEqual(run!.code, 0);
  assert.match(run!.stderr, /distributed\.initProcessGroup\(/);
  assert.ok(Date.now() - started < 15_000);
});

test('collectives before initProcessGroup give an error that says to call it', { skip }, () => {
  const dist = torch.distributed;
  assert.equal(dist.isInitialized(), false);
  const t = torch.ones([2]);
  assert.throws(() => dist.allReduce(t), /^Error: distributed\.allReduce\(Tensor\[2\] Float, 'sum'\): the default process group is not initialised; call initProcessGroup\(\) before allReduce\(\)/);
  assert.throws(() => dist.broadcast(t, 0), /call initProcessGroup\(\) before broadcast\(\)/);
  assert.throws(() => dist.barrier(), /call initProcessGroup\(\) before barrier\(\)/);
  assert.throws(() => dist.getRank(), /call initProcessGroup\(\)/);
  assert.deepEqual(t.tolist(), [1, 1]);
});

test('the process group belongs to the JS environment that made it: a worker thread sees none of the main thread\'s', { skip, timeout: 30_000 }, async () => {
  const dist = torch.distributed;
  const port = await freePort();
  dist.initProcessGroup({ initMethod: `tcp://127.0.0.1:${port}`, rank: 0, worldSize: 1, timeoutMs: 10_000 });
  try {
    const t = torch.tensor([2, 3]);
    dist.allReduce(t); // a world of one: the sum is the tensor itself
    assert.deepEqual(t.tolist(), [2, 3]);
    const torchUrl = new URL('../../src/torch/index.js', import.meta.url).href;
    const code = `
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(torchUrl)}).then((torch) => {
        const d = torch.distributed;
        let error = '';
        try { d.allReduce(torch.ones([1])); } catch (e) { error = e.message; }
        parentPort.postMessage({ initialized: d.isInitialized(), error });
      });`;
    const { Worker } = await import('node:worker_threads');
    const reply = await new Promise<{ initialized: boolean; error: string }>((resolve, reject) => {
      const worker = new Worker(code, { eval: true });
      worker.once('message', (m: { initialized: boolean; error: string }) => void worker.terminate().then(() => resolve(m)));
      worker.once('error', reject);
    });
    assert.equal(reply.initialized, false);
    assert.match(reply.error, /call initProcessGroup\(\) before allReduce\(\)/);
    assert.equal(dist.isInitialized(), true);
    assert.equal(dist.getWorldSize(), 1);
  } finally {
    dist.destroyProcessGroup();
  }
  assert.equal(dist.isInitialized(), false);
});

test('without Gloo in the build, the distributed functions say to install libgloo-dev (the addon itself loads)', { skip: available ? 'this addon has Gloo' : false }, () => {
  const dist = torch.distributed;
  assert.equal(dist.isInitialized(), false);
  assert.throws(() => dist.initProcessGroup({ initMethod: 'tcp://127.0.0.1:29500', rank: 0, worldSize: 1 }), /built without Gloo.*libgloo-dev/);
  assert.throws(() => dist.allReduce(torch.ones([1])), /built without Gloo.*libgloo-dev/);
});

test('env:// reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; options win over them; a missing one is named', () => {
  const env = { RANK: '1', WORLD_SIZE: '4', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' };
  assert.deepEqual(resolveRendezvous({}, env), {
    method: 'tcp', where: '127.0.0.1', port: 29500, rank: 1, worldSize: 4, timeoutMs: 1_800_000, device: 'hostname:127.0.0.1',
  });
  assert.equal(resolveRendezvous({ rank: 3 }, env).rank, 3);
  assert.throws(() => resolveRendezvous({}, { ...env, MASTER_PORT: undefined }), /environment variable MASTER_PORT expected, but not set/);
  assert.throws(() => resolveRendezvous({}, { ...env, RANK: '4' }), /rank 4 is not below worldSize 4/);
  assert.equal(resolveRendezvous({}, { ...env, MASTER_ADDR: 'node0', GLOO_SOCKET_IFNAME: 'eth1' }).device, 'interface:eth1');
  assert.equal(resolveRendezvous({}, { ...env, MASTER_ADDR: 'node0' }).device, 'default');
});

test('tcp:// and file:// take rank and world size from options or the URL query; a missing one is named', () => {
  const tcp = resolveRendezvous({ initMethod: 'tcp://10.0.0.2:1234?rank=2&world_size=3', timeoutMs: 5 }, {});
  assert.deepEqual(tcp, { method: 'tcp', where: '10.0.0.2', port: 1234, rank: 2, worldSize: 3, timeoutMs: 5, device: 'default' });
  const file = resolveRendezvous({ initMethod: 'file:///tmp/some%20dir/store', rank: 0, worldSize: 2 }, {});
  assert.equal(file.method, 'file');
  assert.equal(file.where, '/tmp/some dir/store');
  assert.throws(() => resolveRendezvous({ initMethod: 'tcp://127.0.0.1:1234', rank: 0 }, {}), /worldSize is required with tcp:\/\//);
  assert.throws(() => resolveRendezvous({ initMethod: 'tcp://127.0.0.1', rank: 0, worldSize: 1 }, {}), /has no port/);
  assert.throws(() => resolveRendezvous({ initMethod: 'nccl://x' }, {}), /unknown scheme nccl:/);
  assert.throws(() => resolveRendezvous({ backend: 'nccl' as 'gloo' }, {}), /backend 'nccl' is not available/);
});
