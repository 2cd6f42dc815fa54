/**
 * torch.distributed over libtorch's c10d (Gloo on CPU), with PyTorch's names: one default process
 * group per JS environment, rendezvous by `env://` (torchrun's RANK, WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT), `tcp://host:port` or `file:///path`, and blocking collectives that act in place
 * as torch.distributed's do. Every collective ends within the group's timeout: a rank that died
 * or never makes the same call gives an Error naming the operation, never a hang.
 *
 * ```ts
 * import * as torch from 'embtune/torch';
 * const dist = torch.distributed;
 * dist.initProcessGroup({ backend: 'gloo' });   // reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
 * dist.allReduce(grad);                          // sum over ranks, in place
 * ```
 */
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { noGrad } from './autograd.js';
import { cat } from './ops.js';

export type Backend = 'gloo';
/** Reductions of allReduce; 'avg' sums and divides by the world size (Gloo has no AVG of its own). */
export type ReduceOp = 'sum' | 'avg' | 'product' | 'min' | 'max';

export interface InitProcessGroupOptions {
  backend?: Backend;
  /** 'env://' (the default), 'tcp://host:port' or 'file:///absolute/path' (a file every rank can reach, fresh per run). */
  initMethod?: string;
  /** This process's rank; env:// falls back to RANK. */
  rank?: number;
  /** The number of processes; env:// falls back to WORLD_SIZE. */
  worldSize?: number;
  /** Rendezvous and collective timeout (PyTorch's default: 30 minutes). */
  timeoutMs?: number;
}

/** PyTorch's default_pg_timeout. */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

/** The rendezvous a set of options and environment variables resolve to (exported for tests and the launcher). */
export interface Rendezvous {
  method: 'tcp' | 'file';
  /** The master's host for tcp, the store's path for file. */
  where: string;
  port: number;
  rank: number;
  worldSize: number;
  timeoutMs: number;
  /** How Gloo binds its transport: 'hostname:H', 'interface:I' or 'default'. */
  device: string;
}

function fail(why: string): never {
  throw new Error(`distributed.initProcessGroup(): ${why}`);
}

function intFrom(name: string, value: string | number | undefined | null, min: number): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < min) fail(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Where Gloo's TCP transport listens. As PyTorch: GLOO_SOCKET_IFNAME names an interface;
 * otherwise this machine's hostname. A loopback master means every rank is on this machine,
 * so bind to loopback outright (a hostname that resolves elsewhere would not be reachable).
 */
function glooDevice(host: string | undefined, env: NodeJS.ProcessEnv): string {
  const ifname = env.GLOO_SOCKET_IFNAME?.split(',')[0]?.trim();
  if (ifname) return `interface:${ifname}`;
  if (host !== undefined && isLoopback(host)) return `hostname:${host === 'localhost' ? '127.0.0.1' : host.replace(/^\[|\]$/g, '')}`;
  return 'default';
}

/** Resolves initProcessGroup's options against the environment as torch.distributed's rendezvous handlers do. */
export function resolveRendezvous(opts: InitProcessGroupOptions = {}, env: NodeJS.ProcessEnv = process.env): Rendezvous {
  const backend = opts.backend ?? 'gloo';
  if (backend !== 'gloo') fail(`backend '${String(backend)}' is not available (this build has gloo)`);
  const timeoutMs = intFrom('timeoutMs', opts.timeoutMs, 1) ?? DEFAULT_TIMEOUT_MS;
  const initMethod = opts.initMethod ?? 'env://';
  let url: URL;
  try {
    url = new URL(initMethod);
  } catch {
    fail(`initMethod '${initMethod}' is not a URL (expected env://, tcp://host:port or file:///path)`);
  }
  // A query may carry rank and world_size (tcp://h:p?rank=0&world_size=2), as PyTorch accepts.
  const queryRank = url.searchParams.get('rank');
  const queryWorld = url.searchParams.get('world_size');
  let rank = intFrom('rank', opts.rank, 0) ?? intFrom('rank (from the URL)', queryRank, 0);
  let worldSize = intFrom('worldSize', opts.worldSize, 1) ?? intFrom('world_size (from the URL)', queryWorld, 1);
  let method: 'tcp' | 'file';
  let where: string;
  let port = 0;
  if (url.protocol === 'env:') {
    const need = (name: string): string => {
      const v = env[name];
      if (v === undefined || v === '') fail(`environment variable ${name} expected, but not set (env:// reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)`);
      return v;
    };
    rank ??= intFrom('RANK', need('RANK'), 0);
    worldSize ??= intFrom('WORLD_SIZE', need('WORLD_SIZE'), 1);
    method = 'tcp';
    where = need('MASTER_ADDR');
    port = intFrom('MASTER_PORT', need('MASTER_PORT'), 1)!;
  } else if (url.protocol === 'tcp:') {
    method = 'tcp';
    where = url.hostname.replace(/^\[|\]$/g, '');
    port = intFrom('the port of initMethod', url.port, 1) ?? fail(`initMethod '${initMethod}' has no port`);
  } else if (url.protocol === 'file:') {
    method = 'file';
    where = decodeURIComponent(url.pathname);
    if (!where || where === '/') fail(`initMethod '${initMethod}' names no file`);
  } else {
    fail(`initMethod '${initMethod}': unknown scheme ${url.protocol} (expected env://, tcp:// or file://)`);
  }
  if (rank === undefined) fail(`rank is required with ${url.protocol}//`);
  if (worldSize === undefined) fail(`worldSize is required with ${url.protocol}//`);
  if (rank >= worldSize) fail(`rank ${rank} is not below worldSize ${worldSize}`);
  if (port > 65535) fail(`port ${port} is above 65535`);
  return { method, where, port, rank, worldSize, timeoutMs, device: glooDevice(method === 'tcp' ? where : undefined, env) };
}

function sameShape(op: string, name: string, t: Tensor, shape: number[]): void {
  const have = t.shape;
  if (have.length !== shape.length || have.some((d, i) => d !== shape[i])) {
    throw new Error(`distributed.${op}(): ${name} has shape [${have.join(', ')}], the gathered data needs [${shape.join(', ')}]`);
  }
}

/** Whether this addon was built with Gloo (libgloo-dev present at build time). */
export function isAvailable(): boolean {
  return native.distIsAvailable();
}

/**
 * Joins the default process group: blocks until all `worldSize` ranks have met (or the timeout
 * passes). Rank 0 hosts the TCP store for env:// and tcp://.
 */
export function initProcessGroup(opts: InitProcessGroupOptions = {}): void {
  const r = resolveRendezvous(opts);
  native.distInit(r.method, r.where, r.port, r.rank, r.worldSize, r.timeoutMs, r.device);
}

export function isInitialized(): boolean {
  return native.distIsInitialized();
}

export function getRank(): number {
  return native.distInfo()[0];
}

export function getWorldSize(): number {
  return native.distInfo()[1];
}

/** Reduces `tensor` over all ranks, in place (torch.distributed.all_reduce). */
export function allReduce(tensor: Tensor, op: ReduceOp = 'sum'): void {
  native.distAllReduce(tensor.handle, op);
}

/** Every rank's `tensor`, in rank order, as new tensors (not part of any autograd graph). */
export function allGatherTensors(tensor: Tensor): Tensor[] {
  return native.distAllGather(tensor.handle).map((h) => new Tensor(h));
}

/** torch.distributed.all_gather: fills `tensorList[r]` with rank r's `tensor`. */
export function allGather(tensorList: Tensor[], tensor: Tensor): void {
  const worldSize = getWorldSize();
  if (tensorList.length !== worldSize) {
    throw new Error(`distributed.allGather(): tensorList holds ${tensorList.length} tensors, the world size is ${worldSize}`);
  }
  const gathered = allGatherTensors(tensor);
  try {
    // copy_ would broadcast a smaller source silently; PyTorch refuses mismatched shapes.
    gathered.forEach((g, r) => sameShape('allGather', `tensorList[${r}]`, tensorList[r]!, g.shape));
    noGrad(() => tensorList.forEach((out, r) => out.copy_(gathered[r]!)));
  } finally {
    for (const g of gathered) g.dispose();
  }
}

/** torch.distributed.all_gather_into_tensor: every rank's `input` concatenated along dim 0 into `output`. */
export function allGatherIntoTensor(output: Tensor, input: Tensor): void {
  const gathered = allGatherTensors(input);
  try {
    noGrad(() => {
      const joined = cat(gathered, 0);
      try {
        sameShape('allGatherIntoTensor', 'output', output, joined.shape);
        output.copy_(joined);
      } finally {
        joined.dispose();
      }
    });
  } finally {
    for (const g of gathered) g.dispose();
  }
}

/** Overwrites `tensor` on every rank with rank `src`'s values, in place. */
export function broadcast(tensor: Tensor, src: number): void {
  native.distBroadcast(tensor.handle, src);
}

/** Returns once every rank has called barrier(). */
export function barrier(): void {
  native.distBarrier();
}

/**
 * Adds `delta` to the integer at `key` in the group's rendezvous store (c10d `Store.add`) and
 * returns the new value, atomically across every rank: the way to hand out work items to whichever
 * rank asks first. Keys start with `embtune/` (the store also holds c10d's and Gloo's own keys).
 */
export function storeAdd(key: string, delta: number): number {
  if (!Number.isSafeInteger(delta)) throw new Error(`distributed.storeAdd: delta must be an integer, got ${delta}`);
  return native.distStoreAdd(key, delta);
}

/** Leaves the default process group (joins Gloo's threads; rank 0 stops the store). */
export function destroyProcessGroup(): void {
  native.distDestroy();
}
