/**
 * bench/mine: exact inner-product top-k over generated unit vectors (issue 4: 100k queries ×
 * 100k documents × 1024 dims, top-50), embtune's blocked `exactTopK` beside FAISS `IndexFlatIP`
 * (bench/mine_baseline.py, Debian's python3-faiss) on the same vectors in the same run, then
 * usearch HNSW with its recall against the exact answer. The vectors are written once to raw
 * float32 files that every side reads (FAISS memory-maps them). Each search runs in its own process,
 * so that its peak RSS is its own; "search memory" is the peak RSS minus the RSS just before the
 * search (vectors loaded, runtime started), the figure the issue bounds by 2 GB. CPU time (all
 * threads) is printed beside wall time: on a machine whose cores other processes share, it shows
 * the work each side did when wall time mostly shows who got the cores.
 *
 *   npm run bench:mine -- [--queries 100000] [--docs 100000] [--dim 1024] [--k 50] [--quick]
 *                         [--threads N] [--seed 0] [--no-baseline] [--no-hnsw] [--hnsw-queries 10000]
 *                         [--connectivity 16] [--expansion-add 128] [--expansion-search 128] [--data random|lowrank]
 *
 * --quick: 2,000 queries × 20,000 documents unless --queries/--docs say otherwise. --data lowrank
 * gives the vectors a low-dimensional structure (see writeUnitVectors) for HNSW's recall.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { DEFAULT_CORPUS_BLOCK, DEFAULT_QUERY_BLOCK, exactTopK, searchWorkingBytes, type TopK } from '../src/mine/search.js';
import { HnswIndex, measureRecall } from '../src/mine/hnsw.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const count = (name: string, fallback: number): number => {
  const value = Number(flag(name, String(fallback)));
  if (!Number.isInteger(value) || value < 0) throw new Error(`bench/mine: ${name} must be a non-negative integer, got ${flag(name, '')}`);
  return value;
};

/** What every worker is told: the vector files and the sizes. */
interface Job {
  queries: string;
  docs: string;
  nq: number;
  nc: number;
  dim: number;
  k: number;
  threads: number;
  outScores: string;
  outIndices: string;
  hnswQueries: number;
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

interface ExactResult {
  seconds: number;
  cpu_seconds: number;
  rss_before_mb: number;
  peak_rss_mb: number;
}

interface HnswResult {
  seconds_build: number;
  seconds_search: number;
  rss_before_mb: number;
  peak_rss_mb: number;
}

interface FaissResult {
  seconds_add: number;
  seconds_search: number;
  cpu_seconds: number;
  rss_before_mb: number;
  peak_rss_mb: number;
  faiss: string;
}

const MB = 2 ** 20;

// ---------------------------------------------------------------------------------- workers

/** A raw float32 file as a Float32Array over the bytes read (no second copy). */
function readVectors(path: string, rows: number, dim: number): Float32Array {
  const bytes = readFileSync(path);
  if (bytes.byteLength !== rows * dim * 4) throw new Error(`${path}: ${bytes.byteLength} bytes, expected ${rows} × ${dim} float32`);
  return bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, rows * dim) : new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function rssMb(): number {
  return process.memoryUsage.rss() / MB;
}

function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function exactWorker(job: Job): ExactResult {
  torch.setNumThreads(job.threads);
  const queries = readVectors(job.queries, job.nq, job.dim);
  const docs = readVectors(job.docs, job.nc, job.dim);
  const rssBefore = rssMb();
  let reported = 0;
  const cpuStart = process.cpuUsage();
  const started = process.hrtime.bigint();
  const result = exactTopK(queries, docs, job.dim, job.k, {
    onProgress: (done, total) => {
      // A line per tenth on stderr, which the parent passes through, for the long runs.
      const tenth = Math.floor((10 * done) / total);
      if (tenth > reported) {
        reported = tenth;
        process.stderr.write(`  embtune exactTopK ${tenth * 10}% (${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(0)} s)\n`);
      }
    },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  writeFileSync(job.outScores, result.scores);
  writeFileSync(job.outIndices, result.indices);
  return { seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, rss_before_mb: rssBefore, peak_rss_mb: peakRssMb() };
}

function hnswWorker(job: Job): HnswResult {
  const docs = readVectors(job.docs, job.nc, job.dim);
  const queries = readVectors(job.queries, job.nq, job.dim).subarray(0, job.hnswQueries * job.dim);
  const rssBefore = rssMb();
  const options = { connectivity: job.connectivity, expansionAdd: job.expansionAdd, expansionSearch: job.expansionSearch, threads: job.threads };
  let started = process.hrtime.bigint();
  const index = HnswIndex.build(docs, job.dim, options);
  const secondsBuild = Number(process.hrtime.bigint() - started) / 1e9;
  process.stderr.write(`  usearch HNSW built in ${secondsBuild.toFixed(1)} s\n`);
  started = process.hrtime.bigint();
  const result = index.search(queries, job.k);
  const secondsSearch = Number(process.hrtime.bigint() - started) / 1e9;
  writeFileSync(job.outIndices, result.indices);
  writeFileSync(job.outScores, result.scores);
  return { seconds_build: secondsBuild, seconds_search: secondsSearch, rss_before_mb: rssBefore, peak_rss_mb: peakRssMb() };
}

// ---------------------------------------------------------------------------------- parent

type DataKind = 'random' | 'lowrank';

/**
 * Seeded unit vectors written in blocks, so that generating 100k × 1024 needs little memory.
 * 'random': i.i.d. Gaussian directions — the issue's data, and the worst case for a graph index,
 * since every document is nearly equidistant from a query. 'lowrank': directions from a 32-dim
 * latent space mapped into `dim` dims plus a little full-rank noise, the kind of structure real
 * embeddings have, for an HNSW recall figure that says something about real corpora.
 */
function writeUnitVectors(path: string, rows: number, dim: number, data: DataKind, mixing: torch.Tensor): void {
  const fd = openSync(path, 'w');
  try {
    for (let start = 0; start < rows; start += 4096) {
      const block = torch.tidy(() => {
        const n = Math.min(4096, rows - start);
        const v = data === 'random' ? torch.randn([n, dim]) : torch.randn([n, mixing.shape[0]!]).mm(mixing).add(torch.randn([n, dim]).mul(0.1));
        return v.div(v.norm(2, 1, true)).toTypedArray<'float32'>();
      });
      writeSync(fd, block);
    }
  } finally {
    closeSync(fd);
  }
}

function runChild<T>(command: string, args: string[]): T {
  // stderr passes through (progress lines); stdout's last line is the JSON result.
  const run = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) throw new Error(`${command} ${args.slice(0, 2).join(' ')} failed (status ${run.status}${run.signal ? `, signal ${run.signal}` : ''}): ${run.stdout.slice(-2000)}${run.error?.message ?? ''}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as T;
}

function readTopK(scoresPath: string, indicesPath: string, k: number, rows: number, int64: boolean): TopK {
  const scoreBytes = readFileSync(scoresPath);
  const scores = new Float32Array(scoreBytes.buffer.slice(scoreBytes.byteOffset, scoreBytes.byteOffset + rows * k * 4));
  const indexBytes = readFileSync(indicesPath);
  const indices = int64
    ? Int32Array.from(new BigInt64Array(indexBytes.buffer.slice(indexBytes.byteOffset, indexBytes.byteOffset + rows * k * 8)), Number)
    : new Int32Array(indexBytes.buffer.slice(indexBytes.byteOffset, indexBytes.byteOffset + rows * k * 4));
  return { k, scores, indices };
}

/** The first `rows` queries of a result. */
function firstRows(result: TopK, rows: number): TopK {
  return { k: result.k, scores: result.scores.subarray(0, rows * result.k), indices: result.indices.subarray(0, rows * result.k) };
}

/** Largest |score difference| rank by rank: near-tie swaps change indices, never scores. */
function maxScoreDifference(a: TopK, b: TopK): number {
  let worst = 0;
  for (let i = 0; i < a.scores.length; i++) {
    if (Number.isFinite(a.scores[i]!) || Number.isFinite(b.scores[i]!)) worst = Math.max(worst, Math.abs(a.scores[i]! - b.scores[i]!));
  }
  return worst;
}

function memoryLine(name: string, peak: number, before: number, vectorMb: number): string {
  return `${name}: peak RSS ${peak.toFixed(0)} MB; search memory (peak − RSS before the search) ${(peak - before).toFixed(0)} MB; peak − vectors ${(peak - vectorMb).toFixed(0)} MB`;
}

function main(): void {
  if (argv[0] === '--worker') {
    const job = JSON.parse(argv[2]!) as Job;
    console.log(JSON.stringify(argv[1] === 'hnsw' ? hnswWorker(job) : exactWorker(job)));
    return;
  }
  const quick = argv.includes('--quick');
  const nq = count('--queries', quick ? 2000 : 100000);
  const nc = count('--docs', quick ? 20000 : 100000);
  const dim = count('--dim', 1024);
  const k = count('--k', 50);
  const threads = count('--threads', torch.defaultNumThreads());
  const python = flag('--python', '/usr/bin/python3');
  const dir = mkdtempSync(join(tmpdir(), 'embtune-bench-mine-'));
  const job: Job = {
    queries: join(dir, 'queries.f32'), docs: join(dir, 'docs.f32'), nq, nc, dim, k, threads,
    outScores: join(dir, 'embtune-scores.f32'), outIndices: join(dir, 'embtune-indices.i32'),
    hnswQueries: Math.min(nq, count('--hnsw-queries', 10000)),
    connectivity: count('--connectivity', 16), expansionAdd: count('--expansion-add', 128), expansionSearch: count('--expansion-search', 128),
  };
  try {
    torch.manualSeed(count('--seed', 0));
    const data = flag('--data', 'random');
    if (data !== 'random' && data !== 'lowrank') throw new Error(`bench/mine: --data must be random or lowrank, got ${data}`);
    const mixing = torch.randn([32, dim]).div(Math.sqrt(32));
    writeUnitVectors(job.queries, nq, dim, data, mixing);
    writeUnitVectors(job.docs, nc, dim, data, mixing);
    mixing.dispose();
    const vectorMb = ((nq + nc) * dim * 4) / MB;
    const gflop = (2 * nq * nc * dim) / 1e9;
    console.log(`bench/mine: ${nq.toLocaleString('en-US')} queries × ${nc.toLocaleString('en-US')} documents × ${dim} dims (${data} unit vectors, seeded), top-${k}; ${threads} thread(s), BLAS ${torch.blasLibrary().kind}; vectors ${vectorMb.toFixed(0)} MB`);
    console.log(`embtune block working set: ${(searchWorkingBytes(dim) / MB).toFixed(0)} MB (queryBlock ${DEFAULT_QUERY_BLOCK} × corpusBlock ${DEFAULT_CORPUS_BLOCK})\n`);
    const self = fileURLToPath(import.meta.url);

    let faiss: FaissResult | undefined;
    if (!argv.includes('--no-baseline')) {
      faiss = runChild<FaissResult>(python, [join(ROOT, 'bench/mine_baseline.py'), JSON.stringify({
        queries: job.queries, docs: job.docs, nq, nc, dim, k, threads, out_scores: join(dir, 'faiss-scores.f32'), out_indices: join(dir, 'faiss-indices.i64'),
      })]);
      const seconds = faiss.seconds_add + faiss.seconds_search;
      console.log(`FAISS ${faiss.faiss} IndexFlatIP: ${seconds.toFixed(2)} s (add ${faiss.seconds_add.toFixed(2)} s), ${(gflop / seconds).toFixed(0)} GFLOP/s; CPU time ${faiss.cpu_seconds.toFixed(1)} s`);
      console.log(`  ${memoryLine('FAISS', faiss.peak_rss_mb, faiss.rss_before_mb, vectorMb)}`);
    }

    const exact = runChild<ExactResult>(process.execPath, [self, '--worker', 'exact', JSON.stringify(job)]);
    const embtune = readTopK(job.outScores, job.outIndices, k, nq, false);
    console.log(`embtune exactTopK: ${exact.seconds.toFixed(2)} s, ${(gflop / exact.seconds).toFixed(0)} GFLOP/s; CPU time ${exact.cpu_seconds.toFixed(1)} s`);
    console.log(`  ${memoryLine('embtune', exact.peak_rss_mb, exact.rss_before_mb, vectorMb)}`);
    if (faiss) {
      const reference = readTopK(join(dir, 'faiss-scores.f32'), join(dir, 'faiss-indices.i64'), k, nq, true);
      const recall = measureRecall(embtune, reference);
      console.log(`\nratio FAISS time / embtune time: ${((faiss.seconds_add + faiss.seconds_search) / exact.seconds).toFixed(2)} (goal ≥ 1.0); CPU time ratio ${(faiss.cpu_seconds / exact.cpu_seconds).toFixed(2)}`);
      console.log(`agreement: recall of embtune's top-${k} against FAISS's ${recall.toFixed(6)} (goal ≥ 0.999), largest score difference rank by rank ${maxScoreDifference(embtune, reference).toExponential(2)}`);
      console.log(`search memory goal ≤ 2048 MB: embtune ${(exact.peak_rss_mb - exact.rss_before_mb).toFixed(0)} MB`);
    }

    if (!argv.includes('--no-hnsw') && job.hnswQueries > 0) {
      const hnswJob: Job = { ...job, outScores: join(dir, 'hnsw-scores.f32'), outIndices: join(dir, 'hnsw-indices.i32') };
      const hnsw = runChild<HnswResult>(process.execPath, [self, '--worker', 'hnsw', JSON.stringify(hnswJob)]);
      const approx = readTopK(hnswJob.outScores, hnswJob.outIndices, k, job.hnswQueries, false);
      const recall = measureRecall(approx, firstRows(embtune, job.hnswQueries));
      console.log(`\nusearch HNSW (connectivity ${job.connectivity}, expansion_add ${job.expansionAdd}, expansion_search ${job.expansionSearch}): build ${hnsw.seconds_build.toFixed(1)} s over ${nc.toLocaleString('en-US')} documents; search ${hnsw.seconds_search.toFixed(2)} s for ${job.hnswQueries.toLocaleString('en-US')} queries (${(job.hnswQueries / hnsw.seconds_search).toFixed(0)} queries/s; exact search: ${(nq / exact.seconds).toFixed(0)} queries/s)`);
      console.log(`  recall@${k} against exact: ${recall.toFixed(4)}; ${memoryLine('HNSW', hnsw.peak_rss_mb, hnsw.rss_before_mb, vectorMb)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
