/** Shared by the tests: fixture paths, tolerance checks, and a float64 finite-difference gradient check. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { Tensor } from '../src/torch/index.js';

/** The project root (dist/test/helpers.js → ../..). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED = process.env.EMBTUNE_SHARED ?? resolve(ROOT, '..', 'shared');
export const FIXTURES = resolve(SHARED, 'fixtures');

export function values(t: Tensor): number[] {
  return Array.from(t.to('float64').toTypedArray<'float64'>());
}

/** Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, naming the worst element. */
export function assertClose(actual: Tensor | number[], expected: Tensor | number[], { atol = 0, rtol = 0 } = {}, what = 'tensor'): void {
  if (actual instanceof Tensor && expected instanceof Tensor) assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual instanceof Tensor ? values(actual) : actual;
  const e = expected instanceof Tensor ? values(expected) : expected;
  assert.equal(a.length, e.length, `${what}: element count`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const excess = Math.abs(a[i]! - e[i]!) - (atol + rtol * Math.abs(e[i]!));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) assert.fail(`${what}: element ${worst} is ${a[worst]}, expected ${e[worst]} (atol ${atol}, rtol ${rtol})`);
}

/**
 * Checks the gradients of `fn` with respect to each input against central finite differences
 * in float64. The scalar checked is sum(fn(inputs) · W) for a fixed random W, so every output
 * element contributes. Returns the worst relative error ‖analytic − numeric‖∞ / ‖numeric‖∞.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-6): number {
  return torch.tidy(() => {
    for (const x of inputs) assert.equal(x.dtype, 'float64', 'gradcheck needs float64 inputs');
    const probe = torch.noGrad(() => fn(...inputs));
    torch.manualSeed(1234);
    const weights = torch.randn(probe.shape, { dtype: 'float64' });
    const objective = () => fn(...inputs).mul(weights).sum();
    for (const x of inputs) x.grad = undefined;
    objective().backward();
    let worst = 0;
    inputs.forEach((x, i) => {
      if (!x.requiresGrad) return;
      const analytic = x.grad ? values(x.grad) : new Array<number>(x.numel()).fill(0);
      const flat = x.detach().view(-1);
      const numeric: number[] = [];
      for (let j = 0; j < x.numel(); j++) numeric.push(centralDifference(flat, j, () => objective().item(), eps));
      const scale = Math.max(...numeric.map(Math.abs));
      assert.ok(scale > 0, `gradcheck: input ${i} has an all-zero numeric gradient; the check would prove nothing`);
      const diff = Math.max(...analytic.map((a, j) => Math.abs(a - numeric[j]!)));
      worst = Math.max(worst, diff / scale);
    });
    return worst;
  });
}

/**
 * d objective / d flat[j] by central differences: flat[j] ± eps, the objective evaluated at each,
 * flat[j] restored. `flat` is a detached view of the tensor the objective reads.
 */
export function centralDifference(flat: Tensor, j: number, objective: () => number, eps = 1e-6): number {
  return torch.noGrad(() => {
    const element = flat.select(0, j);
    element.add_(eps);
    const plus = objective();
    element.sub_(2 * eps);
    const minus = objective();
    element.add_(eps);
    return (plus - minus) / (2 * eps);
  });
}

/** A float64 leaf that requires grad, with values from a seeded normal (optionally shifted away from kinks). */
export function leaf(shape: number[], seed: number, transform?: (t: Tensor) => Tensor): Tensor {
  torch.manualSeed(seed);
  const base = torch.randn(shape, { dtype: 'float64' });
  const data = transform ? torch.noGrad(() => transform(base)) : base;
  return torch.keep(data.detach().requires_grad_(true));
}

/** A TCP port free on the loopback interface now (the OS picks it; a process told to use it may still lose a race for it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The built command line. */
export const CLI = join(ROOT, 'dist/src/cli/main.js');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `embtune args…` as a child process without blocking the test's event loop, so that several
 * runs (shard workers) go at once: one libtorch/OpenBLAS thread each (the machine has 2 cores),
 * offline, with `env` added.
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, EMBTUNE_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', HF_HUB_OFFLINE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolvePromise({ status, stdout, stderr }));
  });
}
