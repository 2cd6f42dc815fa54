/**
 * `embtune train --nproc-per-node N [--nnodes M --node-rank K --master-addr A --master-port P]`:
 * starts this machine's N workers as torchrun does, each the same command without the launch
 * flags and with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * GROUP_RANK, MASTER_ADDR, MASTER_PORT), so that every worker joins the same c10d group through
 * env:// (src/train/data_parallel.ts). ms-swift's NPROC_PER_NODE, NNODES, NODE_RANK,
 * MASTER_ADDR and MASTER_PORT stand in for missing flags.
 *
 * As torchrun: when one worker fails, the others are stopped and the launcher exits with the
 * failing worker's status. Ctrl-C is passed to every worker once, so each finishes its step and
 * rank 0 saves a checkpoint (the workers run in their own process group, so the terminal's
 * SIGINT does not reach them twice).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { UsageError } from './io.js';

export interface LaunchPlan {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
}

/** The flags the launcher owns (commander's camelCase keys). */
export const LAUNCH_KEYS = ['nprocPerNode', 'nnodes', 'nodeRank', 'masterAddr', 'masterPort'] as const;

export const LAUNCH_FLAGS: [string, string][] = [
  ['--nproc-per-node <n>', 'data-parallel: start n worker processes on this machine, as torchrun (default: NPROC_PER_NODE, else 1); gradients are averaged over all workers of all machines'],
  ['--nnodes <n>', 'machines taking part (default: NNODES, else 1)'],
  ['--node-rank <k>', 'this machine\'s index among them, 0 … nnodes-1 (default: NODE_RANK, else 0)'],
  ['--master-addr <host>', 'the address of node 0, where rank 0 hosts the rendezvous store (default: MASTER_ADDR, else 127.0.0.1)'],
  ['--master-port <port>', 'its port (default: MASTER_PORT, else 29500)'],
];

function integer(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer in [${min}, ${max}], got '${String(value)}'`);
  return n;
}

/**
 * The launch the flags (or ms-swift's environment variables) ask for, or undefined for a plain
 * single-process run. A process that is already a worker (RANK set) never launches again.
 */
export function launchPlan(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): LaunchPlan | undefined {
  const pick = (key: string, variable: string): unknown => flags[key] ?? (env[variable] === '' ? undefined : env[variable]);
  const isWorker = env.RANK !== undefined && env.RANK !== '';
  const nproc = pick('nprocPerNode', 'NPROC_PER_NODE');
  const nnodesRaw = pick('nnodes', 'NNODES');
  if (isWorker) {
    if (flags.nprocPerNode !== undefined || flags.nnodes !== undefined) throw new UsageError('--nproc-per-node/--nnodes given to a worker (RANK is set): run the launch without torchrun, or torchrun without them');
    return undefined;
  }
  const nprocPerNode = nproc === undefined ? 1 : integer('--nproc-per-node', nproc, 1, 1024);
  const nnodes = nnodesRaw === undefined ? 1 : integer('--nnodes', nnodesRaw, 1, 65536);
  if (nprocPerNode * nnodes === 1) return undefined;
  const nodeRankRaw = pick('nodeRank', 'NODE_RANK');
  const nodeRank = nodeRankRaw === undefined ? 0 : integer('--node-rank', nodeRankRaw, 0, nnodes - 1);
  const masterAddr = String(pick('masterAddr', 'MASTER_ADDR') ?? '127.0.0.1');
  const portRaw = pick('masterPort', 'MASTER_PORT');
  const masterPort = portRaw === undefined ? 29500 : integer('--master-port', portRaw, 1, 65535);
  if (nnodes > 1 && flags.masterAddr === undefined && env.MASTER_ADDR === undefined) {
    throw new UsageError('--nnodes > 1 needs --master-addr (the address of node 0, reachable from every machine)');
  }
  return { nprocPerNode, nnodes, nodeRank, masterAddr, masterPort };
}

/** `argv` (after node) without the launch flags, in either spelling (`--nproc-per-node 2`, `--nproc_per_node=2`). */
export function workerArgv(argv: readonly string[]): string[] {
  const launch = /^--(nproc[-_]per[-_]node|nnodes|node[-_]rank|master[-_]addr|master[-_]port)(=.*)?$/;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = launch.exec(argv[i]!);
    if (!m) {
      out.push(argv[i]!);
      continue;
    }
    if (m[2] === undefined) i++; // its value is the next argument
  }
  return out;
}

/** torchrun's environment for local worker `localRank`. */
export function workerEnv(plan: LaunchPlan, localRank: number, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const worldSize = plan.nprocPerNode * plan.nnodes;
  const out: NodeJS.ProcessEnv = {
    ...env,
    RANK: String(plan.nodeRank * plan.nprocPerNode + localRank),
    LOCAL_RANK: String(localRank),
    WORLD_SIZE: String(worldSize),
    LOCAL_WORLD_SIZE: String(plan.nprocPerNode),
    GROUP_RANK: String(plan.nodeRank),
    MASTER_ADDR: plan.masterAddr,
    MASTER_PORT: String(plan.masterPort),
  };
  delete out.NPROC_PER_NODE; // a worker must not launch again
  // The machine's cores shared among its workers (torchrun sets OMP_NUM_THREADS=1 for the same reason).
  if (!env.EMBTUNE_NUM_THREADS) out.EMBTUNE_NUM_THREADS = String(Math.max(1, Math.floor(availableParallelism() / plan.nprocPerNode)));
  return out;
}

/**
 * Runs the workers to the end. Rank 0's output goes to this terminal; the others' is kept and
 * shown (its last lines) only when that worker fails. Resolves to the exit status to use.
 */
export function launchWorkers(plan: LaunchPlan, argv: readonly string[] = process.argv.slice(1), say: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  const args = workerArgv(argv);
  const world = plan.nprocPerNode * plan.nnodes;
  say(`launching ${plan.nprocPerNode} workers on node ${plan.nodeRank} of ${plan.nnodes} (world size ${world}, rendezvous ${plan.masterAddr}:${plan.masterPort})`);
  const children: ChildProcess[] = [];
  const tails: string[] = [];
  let settled = false;
  return new Promise<number>((resolve) => {
    let running = plan.nprocPerNode;
    let status = 0;
    const stopAll = (signal: NodeJS.Signals): void => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    };
    const forward = (signal: NodeJS.Signals) => () => stopAll(signal);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    const onExit = (): void => stopAll('SIGKILL'); // the launcher dying takes its workers with it
    process.on('exit', onExit);
    for (let local = 0; local < plan.nprocPerNode; local++) {
      const rank = plan.nodeRank * plan.nprocPerNode + local;
      const child = spawn(process.execPath, [...process.execArgv, ...args], {
        env: workerEnv(plan, local),
        stdio: rank === 0 ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'ignore', 'pipe'],
        detached: true, // own process group: the terminal's Ctrl-C reaches the workers through onInt only
      });
      tails[local] = '';
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        tails[local] = (tails[local] + chunk).slice(-4000);
      });
      child.on('exit', (code, signal) => {
        running -= 1;
        // 130: interrupted (Ctrl-C) after agreeing on the step; rank 0 may still be saving its checkpoint.
        if (code === 130 && status === 0) status = 130;
        const failed = code !== 0 && code !== 130;
        if (failed && (status === 0 || status === 130)) {
          status = code ?? 1;
          say(`worker rank ${rank} (local ${local}) exited with ${code ?? signal}; stopping the others`);
          if (rank !== 0 && tails[local]) say(tails[local]!.trimEnd().split('\n').slice(-20).join('\n'));
          stopAll('SIGTERM');
        }
        if (running === 0 && !settled) {
          settled = true;
          process.removeListener('SIGINT', onInt);
          process.removeListener('SIGTERM', onTerm);
          process.removeListener('exit', onExit);
          resolve(status);
        }
      });
      children.push(child);
    }
  });
}
