/**
 * bench/serve: load on `embtune serve` from a second process over loopback (issue 11). The server
 * is started as a child (qwen3-tiny as embedding model and reranker, fixture weights); this
 * process is the load generator. Phases, each bounded in time and in request count:
 *   1. batched    — 32 concurrent clients, mixed embed (/v1/embeddings, 1–4 texts) and rerank
 *                   (/rerank, 4 documents), 60 s, below saturation (--max-concurrent-requests 48);
 *   2. sequential — the same mix, one request at a time, 60 s;
 *   3. saturated  — 160 clients against the 48 permits, 15 s: the share of 429s, each checked for Retry-After.
 * Per phase: requests, throughput, p50/p95/p99 latency, failed or lost requests (any answer but
 * 200 — and 429 in phase 3 — or no answer), the mean batch size (rows per forward pass, from the
 * server's /metrics), and the event-loop lag of the server's HTTP thread while the model worked
 * (its 1 ms-resolution monitor, read from /metrics at the end of the phase: max and p99), beside
 * the lag of an idle event loop in a second process under the same load (bench/lag_probe.ts): the
 * part of the lag that the scheduler and the VM impose whatever the server does.
 * It stops by itself: a watchdog kills the server and exits if a phase overruns.
 *
 *   npm run bench:serve -- [--duration 60] [--clients 32] [--saturate-clients 160] [--permits 48]
 *                          [--saturate-duration 15] [--max-requests 200000] [--threads 1] [--rerank-share 0.3] [--models qwen3|bert] [--profile DIR] [--quick]
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LagWindow } from './lag_probe.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared');
const argv = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(name);
  const value = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`bench/serve: ${name} must be a positive number, got ${argv[i + 1]}`);
  return value;
};
/**
 * The fixture models: `qwen3` (default) embeds with qwen3-tiny and reranks with it as a
 * Qwen3-Reranker (93-token pairs: the template); `bert` embeds with bert-tiny and reranks with
 * bert-tiny as a BERT cross-encoder (a seeded one-label head, test/embed/cross_encoder_fixture.ts).
 */
const FIXTURE = (() => {
  const i = argv.indexOf('--models');
  const value = i >= 0 ? argv[i + 1] : 'qwen3';
  if (value !== 'qwen3' && value !== 'bert') throw new Error(`bench/serve: --models must be qwen3 or bert, got ${value}`);
  return value;
})();
const quick = argv.includes('--quick');
/** `--profile DIR`: the server runs under V8's CPU profiler, one .cpuprofile per thread in DIR (open in Chrome DevTools). */
const PROFILE_ARGS = (() => {
  const i = argv.indexOf('--profile');
  if (i < 0) return [];
  const dir = argv[i + 1];
  if (dir === undefined || dir.startsWith('--')) throw new Error('bench/serve: --profile needs a folder for the .cpuprofile files, e.g. --profile /tmp/prof');
  return ['--cpu-prof', '--cpu-prof-dir', dir];
})();
const DURATION = flag('--duration', quick ? 10 : 60);
const CLIENTS = flag('--clients', 32);
const PERMITS = flag('--permits', 48);
const SATURATE_CLIENTS = flag('--saturate-clients', 160);
const SATURATE_DURATION = flag('--saturate-duration', quick ? 5 : 15);
const MAX_REQUESTS = flag('--max-requests', 200_000);
const THREADS = flag('--threads', 1);
/** The share of requests that rerank (the rest embed); 0 measures embedding alone. */
const RERANK_SHARE = (() => {
  const i = argv.indexOf('--rerank-share');
  const value = i >= 0 ? Number(argv[i + 1]) : 0.3;
  if (!(value >= 0 && value <= 1)) throw new Error(`bench/serve: --rerank-share must be in [0, 1], got ${argv[i + 1]}`);
  return value;
})();

const SENTENCES = [
  'How do I control rice blast in a wet season?',
  'Tricyclazole applied at booting protects the panicle.',
  'Wheat rust spreads with wind-borne spores.',
  '水稻稻瘟病怎么防治？',
  'Drain the field for a week before harvest.',
  'Which fertiliser raises the protein content of maize?',
  'Nitrogen split into three applications reduces lodging.',
  'Aphids carry barley yellow dwarf virus between fields.',
];

/** A small seeded generator (mulberry32), so every run sends the same mix. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Tally {
  latencies: number[];
  statuses: Map<number, number>;
  lost: number;
  retryAfterMissing: number;
  sent: number;
}

function request(random: () => number): { path: string; body: unknown } {
  const pick = () => SENTENCES[Math.floor(random() * SENTENCES.length)]!;
  if (random() >= RERANK_SHARE) return { path: '/v1/embeddings', body: { input: Array.from({ length: 1 + Math.floor(random() * 4) }, pick), encoding_format: 'float' } };
  return { path: '/rerank', body: { query: pick(), texts: Array.from({ length: 4 }, pick) } };
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
}

/**
 * The load generator's HTTP client: one kept-alive socket per client, HTTP/1.1 written and parsed
 * here. node:http's client cost this process ~0.19 ms of CPU per request (0.23 cores in the
 * batched phase; fetch cost twice that), and on 2 cores the load generator's CPU is the server's
 * loss. It reads what the bench needs: the status, Retry-After, and the body (by Content-Length,
 * which the server always sends; an answer without one is an error, counted as lost).
 */
class Connection {
  #socket: Socket;
  #buffered: Buffer = Buffer.alloc(0);
  #waiting: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined;
  #closed: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
      this.#parse();
    });
    const fail = (err: Error) => {
      this.#closed ??= err;
      this.#waiting?.reject(err);
      this.#waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('the server closed the connection')));
  }

  static open(url: URL): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.off('error', reject);
        resolve(new Connection(socket));
      });
      socket.once('error', reject);
    });
  }

  post(host: string, path: string, body: string): Promise<Answer> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      const bytes = Buffer.from(body);
      this.#socket.write(`POST ${path} HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\ncontent-length: ${bytes.length}\r\n\r\n`);
      this.#socket.write(bytes);
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Settles the waiting request once its whole answer (head and body) has arrived. */
  #parse(): void {
    const headEnd = this.#buffered.indexOf('\r\n\r\n');
    if (headEnd < 0 || this.#waiting === undefined) return;
    const head = this.#buffered.toString('latin1', 0, headEnd).split('\r\n');
    const header = (name: string) => head.find((line) => line.slice(0, name.length + 1).toLowerCase() === `${name}:`)?.slice(name.length + 1).trim();
    const length = header('content-length');
    if (length === undefined) {
      this.#waiting.reject(new Error(`an answer without Content-Length: ${head[0]}`));
      this.#waiting = undefined;
      this.close();
      return;
    }
    const end = headEnd + 4 + Number(length);
    if (this.#buffered.length < end) return;
    this.#buffered = this.#buffered.subarray(end);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting.resolve({ status: Number(head[0]!.split(' ')[1]), retryAfter: header('retry-after') });
  }
}

async function client(base: string, seed: number, until: number, tally: Tally): Promise<void> {
  const random = rng(seed);
  const url = new URL(base);
  let connection: Connection | undefined;
  while (performance.now() < until && tally.sent < MAX_REQUESTS) {
    const { path, body } = request(random);
    tally.sent++;
    const start = performance.now();
    try {
      connection ??= await Connection.open(url);
      const res = await connection.post(url.host, path, JSON.stringify(body));
      tally.statuses.set(res.status, (tally.statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) tally.latencies.push(performance.now() - start);
      if (res.status === 429) {
        if (res.retryAfter === undefined) tally.retryAfterMissing++;
        // A well-behaved client waits a little before trying again (Retry-After says 1 s; a bench client retries sooner).
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch {
      tally.lost++;
      connection?.close();
      connection = undefined;
    }
  }
  connection?.close();
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One sample of the server's /metrics: batch sums and counts, and the lag since the last scrape. */
async function scrape(base: string): Promise<Map<string, number>> {
  const text = await (await fetch(base + '/metrics')).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(embtune_batch_size_(?:sum|count)\{task="\w+"\}|embtune_event_loop_lag_seconds\{stat="\w+"\}) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** CPU seconds (user + system) of each thread of a process, from /proc (Linux; empty elsewhere). */
function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      // Fields after the command name (which may hold spaces) start at state; utime, stime are 14 and 15.
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Shares of a core over a phase: the server's HTTP (main) thread, its busiest other thread (the model worker), the rest, and this load generator. */
interface CpuShares {
  http: number;
  worker: number;
  serverOther: number;
  loadGenerator: number;
}

function cpuShares(serverPid: number, before: { server: Map<number, number>; self: Map<number, number> }, seconds: number): CpuShares {
  const delta = (now: Map<number, number>, then: Map<number, number>) => new Map([...now].map(([tid, t]) => [tid, t - (then.get(tid) ?? 0)]));
  const server = delta(threadCpu(serverPid), before.server);
  const http = server.get(serverPid) ?? 0;
  const others = [...server].filter(([tid]) => tid !== serverPid).map(([, t]) => t).sort((a, b) => b - a);
  const worker = others[0] ?? 0;
  const serverOther = others.slice(1).reduce((a, b) => a + b, 0);
  const self = [...delta(threadCpu(process.pid), before.self).values()].reduce((a, b) => a + b, 0);
  return { http: http / seconds, worker: worker / seconds, serverOther: serverOther / seconds, loadGenerator: self / seconds };
}

interface PhaseResult {
  name: string;
  clients: number;
  seconds: number;
  tally: Tally;
  batch: Record<string, number>;
  lagMaxMs: number;
  lagP99Ms: number;
  /** The idle probe's lag over the same phase. */
  floor: LagWindow;
  cpu: CpuShares;
}

/** A running lag probe (bench/lag_probe.ts): `read()` returns its lag since the last read. */
interface LagProbe {
  read(): Promise<LagWindow>;
  stop(): void;
}

function startLagProbe(): LagProbe {
  const child = fork(join(ROOT, 'dist/bench/lag_probe.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    read: () =>
      new Promise((resolve, reject) => {
        const answer = (window: unknown) => {
          clearTimeout(timer);
          resolve(window as LagWindow);
        };
        const timer = setTimeout(() => {
          child.off('message', answer);
          reject(new Error('bench/serve: the lag probe did not answer within 5 s'));
        }, 5000);
        child.once('message', answer);
        child.send('read');
      }),
    stop: () => child.disconnect(),
  };
}

async function phase(base: string, serverPid: number, probe: LagProbe, name: string, clients: number, seconds: number): Promise<PhaseResult> {
  const before = await scrape(base); // also resets the lag monitor
  await probe.read(); // starts the probe's window
  const cpuBefore = { server: threadCpu(serverPid), self: threadCpu(process.pid) };
  const tally: Tally = { latencies: [], statuses: new Map(), lost: 0, retryAfterMissing: 0, sent: 0 };
  const start = performance.now();
  const until = start + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, (_, i) => client(base, 1000 * (i + 1), until, tally)));
  const elapsed = (performance.now() - start) / 1000;
  const cpu = cpuShares(serverPid, cpuBefore, elapsed);
  const after = await scrape(base);
  const floor = await probe.read();
  const batch: Record<string, number> = {};
  for (const task of ['embed', 'rerank']) {
    const d = (k: string) => (after.get(`embtune_batch_size_${k}{task="${task}"}`) ?? 0) - (before.get(`embtune_batch_size_${k}{task="${task}"}`) ?? 0);
    batch[task] = d('sum') / Math.max(1, d('count'));
  }
  return {
    name,
    clients,
    seconds: elapsed,
    tally,
    batch,
    lagMaxMs: (after.get('embtune_event_loop_lag_seconds{stat="max"}') ?? NaN) * 1000,
    lagP99Ms: (after.get('embtune_event_loop_lag_seconds{stat="p99"}') ?? NaN) * 1000,
    floor,
    cpu,
  };
}

function report(r: PhaseResult): string {
  const sorted = [...r.tally.latencies].sort((a, b) => a - b);
  const ok = r.tally.statuses.get(200) ?? 0;
  const overloaded = r.tally.statuses.get(429) ?? 0;
  const answered = [...r.tally.statuses.values()].reduce((a, b) => a + b, 0);
  const failed = answered - ok - overloaded;
  return [
    `${r.name.padEnd(10)} ${String(r.clients).padStart(4)} clients ${r.seconds.toFixed(1).padStart(5)} s: ${String(r.tally.sent).padStart(6)} requests, ${(ok / r.seconds).toFixed(1).padStart(7)} ok/s`,
    `p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p95 ${quantile(sorted, 0.95).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms`,
    `failed ${failed}, lost ${r.tally.lost}, 429 ${overloaded} (${((100 * overloaded) / Math.max(1, answered)).toFixed(1)}%, ${r.tally.retryAfterMissing} without Retry-After)`,
    `mean batch: embed ${r.batch.embed!.toFixed(1)} rows, rerank ${r.batch.rerank!.toFixed(1)} pairs per forward pass`,
    `event-loop lag: max ${r.lagMaxMs.toFixed(1)} ms, p99 ${r.lagP99Ms.toFixed(1)} ms (an idle loop beside it: max ${r.floor.maxMs.toFixed(1)} ms, p99 ${r.floor.p99Ms.toFixed(1)} ms)`,
    `CPU (cores): HTTP thread ${r.cpu.http.toFixed(2)}, model worker ${r.cpu.worker.toFixed(2)}, other server threads ${r.cpu.serverOther.toFixed(2)}, load generator ${r.cpu.loadGenerator.toFixed(2)}`,
  ].join(' | ');
}

async function startServer(embedding: string, reranker: string): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(
    process.execPath,
    [...PROFILE_ARGS, join(ROOT, 'dist/src/cli/main.js'), 'serve', '--model', embedding, '--reranker', reranker, '--port', '0', '--threads', String(THREADS), '--max-concurrent-requests', String(PERMITS), '--rerank-batch-size', '32'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, HF_HUB_OFFLINE: '1' } },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const deadline = Date.now() + 120_000;
  while (!/listening on (http:\/\/\S+)/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`bench/serve: the server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(out.trim());
  return { child, base: /listening on (http:\/\/\S+)/.exec(out)![1]! };
}

async function fixtureModels(): Promise<{ embedding: string; reranker: string; cleanup: () => void }> {
  if (FIXTURE === 'qwen3') {
    const qwen = join(SHARED, 'fixtures/models/qwen3-tiny');
    return { embedding: qwen, reranker: qwen, cleanup: () => {} };
  }
  const { crossEncoderFolder } = await import('../test/embed/cross_encoder_fixture.js');
  const { dir, cleanup } = crossEncoderFolder();
  return { embedding: join(SHARED, 'fixtures/models/bert-tiny'), reranker: dir, cleanup };
}

async function main(): Promise<void> {
  const models = await fixtureModels();
  process.once('exit', models.cleanup);
  const { child, base } = await startServer(models.embedding, models.reranker);
  const probe = startLagProbe();
  const budget = (DURATION * 2 + SATURATE_DURATION + 120) * 1000;
  const watchdog = setTimeout(() => {
    console.error('bench/serve: the run overran its time budget; stopping');
    child.kill('SIGKILL');
    process.exit(1);
  }, budget);
  try {
    // Warm-up: a few requests so that first-call costs are not timed.
    await phase(base, child.pid!, probe, 'warm-up', 4, 2);
    const batched = await phase(base, child.pid!, probe, 'batched', CLIENTS, DURATION);
    console.log(report(batched));
    const sequential = await phase(base, child.pid!, probe, 'sequential', 1, DURATION);
    console.log(report(sequential));
    const saturated = await phase(base, child.pid!, probe, 'saturated', SATURATE_CLIENTS, SATURATE_DURATION);
    console.log(report(saturated));
    const rate = (r: PhaseResult) => (r.tally.statuses.get(200) ?? 0) / r.seconds;
    const speedup = rate(batched) / rate(sequential);
    const belowOk = [batched, sequential].every((r) => r.tally.lost === 0 && [...r.tally.statuses.keys()].every((s) => s === 200));
    const saturatedOk = saturated.tally.lost === 0 && saturated.tally.retryAfterMissing === 0 && [...saturated.tally.statuses.keys()].every((s) => s === 200 || s === 429);
    console.log(`batched / sequential throughput: ${speedup.toFixed(2)}x (needs >= 5x): ${speedup >= 5 ? 'ok' : 'BELOW'}`);
    console.log(`below saturation: ${belowOk ? '0 failed, 0 lost' : 'FAILED OR LOST REQUESTS'}; past it: ${saturatedOk ? 'only 200 and 429, every 429 with Retry-After' : 'UNEXPECTED ANSWERS'}`);
    const lag = Math.max(batched.lagMaxMs, sequential.lagMaxMs);
    const floor = Math.max(batched.floor.maxMs, sequential.floor.maxMs);
    console.log(`event-loop lag while the model worked: max ${lag.toFixed(1)} ms (needs < 20 ms): ${lag < 20 ? 'ok' : 'ABOVE'}; an idle event loop in a second process, same phases: max ${floor.toFixed(1)} ms`);
    if (speedup < 5 || !belowOk || !saturatedOk || !(lag < 20)) process.exitCode = 1;
  } finally {
    clearTimeout(watchdog);
    probe.stop();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

main().catch((err: unknown) => {
  console.error(`bench/serve: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
