/**
 * bench/train: one LoRA training step of `embtune train` on Qwen3-Embedding-0.6B's exact shapes
 * (random weights, float32), beside the same step in plain PyTorch written the way transformers
 * (eager attention) + PEFT + ms-swift run it (bench/train_baseline.py), in the same invocation
 * (issue 5, "How it is proved", bench/train).
 *
 * The step: a batch of `rows` (4) × (1 query + 1 positive + `negatives` (5) negatives) = 28
 * sequences of `seq` (128) tokens, all real (right padding, none needed) → forward → last-token
 * pooling + L2 normalisation (REFERENCE §3.2) → InfoNCE with τ 0.01, in-batch negatives and the
 * fake-negative mask (§3.3) → backward into LoRA r 8 / α 32 / dropout 0.05 on all seven linears
 * of every layer, base frozen (§3.5, §7) → clip to 1.0 → AdamW (β2 0.95, weight decay 0.1).
 * The embtune side runs it through the trainer's own pieces — `loadTrainableModel` (the model
 * with its fresh adapter, and its gradient checkpointing), the InfoNCE objective, clipGradNorm,
 * AdamW — in the order `Trainer` calls them, on a random-weight model folder written to a
 * temporary directory.
 *
 * Modes, each in its own process (so that peak RSS is its own): PyTorch with gradient
 * checkpointing per layer (HF's default for ms-swift), PyTorch without (opt-in: it needs more
 * memory than this machine class has — skipped when the projection says so), embtune without and
 * with checkpointing. A watchdog stops any process whose RSS would pass what the machine can
 * give, so a step that does not fit is reported instead of waking the kernel's OOM killer.
 * Peak RSS is the high-water mark of the steps (reset after loading, on both sides).
 *
 * Equal settings: both sides draw the same weights from the same seed in the same order (the
 * same libtorch generator) and re-seed before every step, so their dropout masks match too; the
 * table shows each mode's warm-up loss, which agree. `--check` proves it on a tiny model whose
 * weights travel in a safetensors file: loss, every LoRA gradient and the updated adapter of one
 * step, each embtune mode against each PyTorch mode.
 *
 *   npm run bench:train -- [--steps 2] [--layers 28] [--seq 128] [--rows 4] [--negatives 5] [--threads N]
 *                          [--rounds 1] [--seed 0] [--baseline-no-checkpoint] [--skip-baseline]
 *                          [--memory-cap GiB] [--python /usr/bin/python3] [--check]
 *   npm run bench:train -- --nproc N …   N data-parallel processes against 1 (bench/train_dp.ts, its own flags)
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { AdamW, F, Tensor, clipGradNorm, enableGrad, fromTypedArray, noGrad, tidy } from '../src/torch/index.js';
import type { Qwen3Config } from '../src/models/qwen3.js';
import { saveSafetensors } from '../src/formats/safetensors_write.js';
import { loadSafetensors } from '../src/formats/safetensors.js';
import { DEFAULTS, learningRateOf, type TrainConfig } from '../src/train/config.js';
import { loadTrainableModel, type LoadedTrainable } from '../src/train/model.js';
import { infonceObjective } from '../src/train/objective.js';
import { infonceLogits } from '../src/train/loss.js';
import { SeededRandom } from '../src/train/groups.js';
import type { TrainableModel } from '../src/train/trainer.js';
import { UsageError } from '../src/cli/io.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared');
const TOKENIZER = join(SHARED, 'fixtures/tokenizers/qwen3-embedding');
const GiB = 1024 ** 3;

/** Qwen3-Embedding-0.6B (REFERENCE §6.1); `num_hidden_layers` is replaced by `--layers`. */
const QWEN3_0_6B: Qwen3Config = {
  model_type: 'qwen3', vocab_size: 151669, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16,
  num_key_value_heads: 8, head_dim: 128, rms_norm_eps: 1e-6, rope_theta: 1e6, hidden_act: 'silu', tie_word_embeddings: true,
};

/** The tiny model of `--check`: heads·head_dim ≠ hidden and GQA, as in the real one. */
const CHECK_CONFIG: Qwen3Config = {
  model_type: 'qwen3', vocab_size: 512, hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 32, rms_norm_eps: 1e-6, rope_theta: 1e6, hidden_act: 'silu', tie_word_embeddings: true,
};

/** `<|endoftext|>`: ms-swift's qwen3_emb template ends every sequence with it (REFERENCE §3.1). */
const EOS_ID = 151643;

/**
 * The step's settings: ms-swift's LoRA and optimiser defaults (REFERENCE §3.5), the tutorial's
 * learning rate (6e-6), τ 0.01 with the fake-negative mask on (§3.3, the tutorial's flags).
 */
interface TrainingSettings {
  r: number;
  alpha: number;
  dropout: number;
  lr: number;
  beta2: number;
  weightDecay: number;
  maxGradNorm: number;
  temperature: number;
}

const TRAINING: TrainingSettings = { r: 8, alpha: 32, dropout: 0.05, lr: 6e-6, beta2: 0.95, weightDecay: 0.1, maxGradNorm: 1.0, temperature: 0.01 };

// ------------------------------------------------------------------------------------ options

interface BenchOptions {
  /** Timed steps after one warm-up step. */
  steps: number;
  layers: number;
  seq: number;
  rows: number;
  negatives: number;
  threads: number;
  /** Each round runs every mode once, the sides alternating which goes first. */
  rounds: number;
  seed: number;
  python: string;
  baselineNoCheckpoint: boolean;
  skipBaseline: boolean;
  /** Run only the checkpointed modes (the equal-settings floor), e.g. for more rounds. */
  checkpointingOnly: boolean;
  check: boolean;
  /** Bytes each child process may use at most (default: what is available, less 1 GiB). */
  memoryCap?: number;
}

const VALUE_FLAGS = ['--steps', '--layers', '--seq', '--rows', '--negatives', '--threads', '--rounds', '--seed', '--python', '--memory-cap'] as const;
const SWITCHES = ['--baseline-no-checkpoint', '--skip-baseline', '--check', '--checkpointing-only'] as const;

function parseOptions(argv: string[]): BenchOptions {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if ((SWITCHES as readonly string[]).includes(arg)) switches.add(arg);
    else if ((VALUE_FLAGS as readonly string[]).includes(arg)) {
      if (argv[i + 1] === undefined) throw new UsageError(`bench/train: ${arg} needs a value`);
      values.set(arg, argv[++i]!);
    } else throw new UsageError(`bench/train: unknown argument '${arg}' (flags: ${[...VALUE_FLAGS, ...SWITCHES].join(', ')})`);
  }
  const count = (flag: string, fallback: number, min = 1): number => {
    const text = values.get(flag);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`bench/train: ${flag} must be an integer ≥ ${min}, got '${text}'`);
    return n;
  };
  return {
    steps: count('--steps', 2),
    layers: count('--layers', QWEN3_0_6B.num_hidden_layers!),
    seq: count('--seq', 128, 2),
    rows: count('--rows', 4, 2),
    negatives: count('--negatives', 5),
    threads: count('--threads', torch.defaultNumThreads()),
    rounds: count('--rounds', 1),
    seed: count('--seed', 0, 0),
    python: values.get('--python') ?? '/usr/bin/python3',
    baselineNoCheckpoint: switches.has('--baseline-no-checkpoint'),
    skipBaseline: switches.has('--skip-baseline'),
    checkpointingOnly: switches.has('--checkpointing-only'),
    check: switches.has('--check'),
    memoryCap: gibibytes(values.get('--memory-cap')),
  };
}

function gibibytes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`bench/train: --memory-cap must be a positive number of GiB, got '${text}'`);
  return n * GiB;
}

// ------------------------------------------------------------------------------------ the batch and the model folder

/** `sequences` rows of `seq` token ids: random tokens ending with `<|endoftext|>`. */
function randomTokenIds(sequences: number, seq: number, vocab: number, seed: number): number[][] {
  const random = new SeededRandom(seed);
  const eos = vocab > EOS_ID ? EOS_ID : vocab - 1;
  return Array.from({ length: sequences }, () => [...Array.from({ length: seq - 1 }, () => Math.floor(random.next() * eos)), eos]);
}

type Init = 'normal' | 'ones' | 'around-one';

/**
 * The base weights in the order train_baseline.py `random_base` draws them: embed_tokens, then
 * per layer q, k, v, o, gate, up, down; the norms last, so that their draws (in --check, where
 * they are not ones) do not shift the matrices'.
 */
function qwen3WeightPlan(c: Qwen3Config, norms: 'ones' | 'around-one'): [string, number[], Init][] {
  const [h, i, d, nq, nkv] = [c.hidden_size, c.intermediate_size, c.head_dim!, c.num_attention_heads, c.num_key_value_heads];
  const plan: [string, number[], Init][] = [['embed_tokens.weight', [c.vocab_size!, h], 'normal']];
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    const p = `layers.${l}`;
    plan.push(
      [`${p}.self_attn.q_proj.weight`, [nq * d, h], 'normal'], [`${p}.self_attn.k_proj.weight`, [nkv * d, h], 'normal'],
      [`${p}.self_attn.v_proj.weight`, [nkv * d, h], 'normal'], [`${p}.self_attn.o_proj.weight`, [h, nq * d], 'normal'],
      [`${p}.mlp.gate_proj.weight`, [i, h], 'normal'], [`${p}.mlp.up_proj.weight`, [i, h], 'normal'], [`${p}.mlp.down_proj.weight`, [h, i], 'normal'],
    );
  }
  plan.push(['norm.weight', [h], norms]);
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    for (const n of ['input_layernorm', 'post_attention_layernorm']) plan.push([`layers.${l}.${n}.weight`, [h], norms]);
    for (const n of ['q_norm', 'k_norm']) plan.push([`layers.${l}.self_attn.${n}.weight`, [d], norms]);
  }
  return plan;
}

/**
 * Writes a Qwen3-Embedding model folder with random float32 weights (HF's initializer_range
 * 0.02 for the matrices, drawn from manualSeed(seed)): config.json, model.safetensors with the
 * checkpoint's flat names (REFERENCE §6.3), and the Qwen3-Embedding tokenizer of the fixtures.
 */
function writeRandomModelFolder(folder: string, config: Qwen3Config, seed: number, norms: 'ones' | 'around-one'): void {
  mkdirSync(folder, { recursive: true });
  torch.manualSeed(seed);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, shape, init] of qwen3WeightPlan(config, norms)) {
      tensors.set(name, tidy(() => (init === 'ones' ? torch.ones(shape) : init === 'normal' ? torch.randn(shape).mul(0.02) : torch.randn(shape).mul(0.1).add(1))));
    }
    saveSafetensors(join(folder, 'model.safetensors'), tensors, { format: 'pt' });
  } finally {
    torch.dispose([...tensors.values()]);
  }
  writeFileSync(join(folder, 'config.json'), JSON.stringify({ architectures: ['Qwen3ForCausalLM'], ...config, torch_dtype: 'float32' }, null, 2));
  for (const file of ['tokenizer.json.gz', 'tokenizer_config.json', 'vocab.json', 'merges.txt']) copyFileSync(join(TOKENIZER, file), join(folder, file));
}

/** The model folder is written by a child process, so that the parent never holds the weights. */
function writeModelFolderInChild(folder: string, config: Qwen3Config, seed: number): void {
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--write-model', JSON.stringify({ folder, config, seed })], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`bench/train: writing the random model folder ${folder} failed (status ${child.status}, signal ${child.signal})`);
}

// ------------------------------------------------------------------------------------ the embtune step

/** `embtune train`'s configuration for this step: ms-swift's defaults (config.ts DEFAULTS), stated. */
function trainConfigFor(folder: string, opts: { checkpointing: boolean; seed: number; lr: number; dtype?: 'float32' | 'bfloat16' }): TrainConfig {
  return {
    ...DEFAULTS, model: folder, dataset: [], seed: opts.seed, gradientCheckpointing: opts.checkpointing, dtype: opts.dtype ?? 'float32',
    loraRank: TRAINING.r, loraAlpha: TRAINING.alpha, loraDropout: TRAINING.dropout, targetModules: ['all-linear'],
    learningRate: opts.lr, adamBeta2: TRAINING.beta2, weightDecay: TRAINING.weightDecay, maxGradNorm: TRAINING.maxGradNorm,
    temperature: TRAINING.temperature, maskFakeNegative: true, useBatch: true,
  };
}

/** Everything one training run holds: the trainable model, its optimizer and objective, the batch. */
interface TrainingRun {
  loaded: LoadedTrainable;
  model: TrainableModel;
  params: Tensor[];
  optimizer: AdamW;
  objective: ReturnType<typeof infonceObjective>;
  config: TrainConfig;
  inputIds: Tensor;
  attentionMask: Tensor;
  groupSizes: number[];
}

/**
 * The model loaded as `embtune train` loads it (its LoRA adapter drawn from manualSeed(seed), as
 * train_baseline.py draws its own), the optimizer as `Trainer` builds it, the batch.
 */
async function setUpRun(folder: string, ids: number[][], rows: number, negatives: number, opts: { checkpointing: boolean; seed: number; lr: number; dtype?: 'float32' | 'bfloat16' }): Promise<TrainingRun> {
  const config = trainConfigFor(folder, opts);
  const loaded = await loadTrainableModel(folder, config);
  const model = loaded.trainable;
  const params = [...model.trainableParameters().values()];
  const optimizer = new AdamW(params, { lr: learningRateOf(config), betas: [config.adamBeta1, config.adamBeta2], eps: config.adamEpsilon, weight_decay: config.weightDecay });
  const inputIds = torch.keep(fromTypedArray(BigInt64Array.from(ids.flat(), (v) => BigInt(v)), [ids.length, ids[0]!.length]));
  const attentionMask = torch.keep(torch.ones([ids.length, ids[0]!.length], { dtype: 'int64' }));
  const groupSizes = Array.from({ length: rows }, () => 1 + 1 + negatives);
  return { loaded, model, params, optimizer, objective: infonceObjective(config, {}), config, inputIds, attentionMask, groupSizes };
}

interface StepOutcome {
  loss: number;
  /** Total gradient norm before clipping. */
  gradNorm: number;
  /** The gradients before clipping, by saved (PEFT) name; only when asked. */
  grads?: Map<string, Float32Array>;
  /** Query–document entries the fake-negative mask removed; only when asked. */
  fakeNegatives?: number;
}

/**
 * One optimizer step as `Trainer.run` takes it with one micro-batch: re-seed (the dropout
 * masks; train_baseline.py seeds the same way), train mode, encode, normalise, InfoNCE,
 * backward (the model's own when it checkpoints), clip, AdamW, zero the gradients.
 */
function trainStep(run: TrainingRun, stepSeed: number, inspect = false): StepOutcome {
  torch.manualSeed(stepSeed);
  run.model.train(true);
  const groups = { negativesPerRow: run.groupSizes.map((s) => s - 2) };
  const { loss, fakeNegatives } = tidy(() => {
    const embeddings = enableGrad(() => F.normalize(run.model.encode(run.inputIds, run.attentionMask), 2, -1));
    const value = enableGrad(() => run.objective.loss(embeddings, run.groupSizes.map((s) => s - 1)));
    const masked = inspect ? noGrad(() => infonceLogits(embeddings.detach(), groups, run.objective.options).fakeNegatives?.sum().item() ?? 0) : undefined;
    if (run.model.backward) run.model.backward(value);
    else value.backward();
    return { loss: value.item(), fakeNegatives: masked };
  });
  const grads = inspect ? new Map([...run.model.trainableParameters()].map(([name, p]) => [name, tidy(() => p.grad!.toTypedArray<'float32'>())])) : undefined;
  const gradNorm = clipGradNorm(run.params, run.config.maxGradNorm);
  run.optimizer.step();
  run.optimizer.zero_grad();
  return { loss, gradNorm, grads, fakeNegatives };
}

function disposeRun(run: TrainingRun): void {
  torch.dispose([run.inputIds, run.attentionMask, ...[...run.optimizer.state.values()].flatMap((s) => [s.exp_avg, s.exp_avg_sq])]);
  run.loaded.dispose();
}

// ------------------------------------------------------------------------------------ peak RSS of the steps

/** Resets this process's RSS high-water mark (Linux ≥ 4.0: `5` into /proc/self/clear_refs), so that the peak is the steps'. */
function resetPeakRss(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

/** VmHWM: the RSS high-water mark since the last reset, in MiB. */
function peakRssMb(): number {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  if (!line) throw new Error('/proc/self/status has no VmHWM line');
  return Number(line.split(/\s+/)[1]) / 1024;
}

// ------------------------------------------------------------------------------------ worker processes

/** What one process reports about its steps; train_baseline.py prints the same keys. */
interface StepReport {
  seconds: number[];
  losses: number[];
  grad_norms: number[];
  /** RSS high-water mark of the steps (the weights included), MiB. */
  peak_rss_mb: number;
}

/** A mode's result, or why there is none (`neededMoreThanMb`: the watchdog stopped it at that RSS). */
type Outcome = { ran: true; report: StepReport } | { ran: false; reason: string; neededMoreThanMb?: number };

interface WorkerArgs {
  folder: string;
  idsFile: string;
  rows: number;
  negatives: number;
  /** Warm-up plus timed steps. */
  steps: number;
  seed: number;
  threads: number;
  checkpointing: boolean;
  /** The frozen base's dtype (LoRA adapters stay float32). */
  dtype: 'float32' | 'bfloat16';
}

/** Worker process: the embtune side of one mode; prints a StepReport as its last line. */
async function worker(args: WorkerArgs): Promise<void> {
  torch.setNumThreads(args.threads);
  const ids = JSON.parse(readFileSync(args.idsFile, 'utf8')) as number[][];
  const run = await setUpRun(args.folder, ids, args.rows, args.negatives, { checkpointing: args.checkpointing, seed: args.seed, lr: TRAINING.lr, dtype: args.dtype });
  const report: StepReport = { seconds: [], losses: [], grad_norms: [], peak_rss_mb: 0 };
  resetPeakRss();
  for (let step = 0; step < args.steps; step++) {
    const started = process.hrtime.bigint();
    const outcome = trainStep(run, args.seed + 1 + step);
    report.seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    report.losses.push(outcome.loss);
    report.grad_norms.push(outcome.gradNorm);
    process.stderr.write(`  embtune step ${step + 1}/${args.steps}: ${report.seconds.at(-1)!.toFixed(1)} s, loss ${outcome.loss.toFixed(6)}\n`);
  }
  report.peak_rss_mb = peakRssMb();
  disposeRun(run);
  console.log(JSON.stringify(report));
}

// ------------------------------------------------------------------------------------ the PyTorch baseline

/** The argument train_baseline.py reads (one JSON object). */
interface BaselineArgs {
  threads: number;
  config: { vocab: number; hidden: number; intermediate: number; layers: number; heads: number; kv_heads: number; head_dim: number; eps: number; theta: number };
  r: number;
  alpha: number;
  dropout: number;
  lr: number;
  beta2: number;
  weight_decay: number;
  max_grad_norm: number;
  temperature: number;
  rows: number;
  negatives: number;
  ids: string;
  seed: number;
  steps: number;
  checkpointing: boolean;
  /** Address space the process may add to what it has mapped at start (its allocations fail beyond). */
  memory_limit_bytes?: number;
  check?: boolean;
  weights?: string;
  result?: string;
}

function baselineConfig(c: Qwen3Config): BaselineArgs['config'] {
  return {
    vocab: c.vocab_size!, hidden: c.hidden_size, intermediate: c.intermediate_size, layers: c.num_hidden_layers!, heads: c.num_attention_heads,
    kv_heads: c.num_key_value_heads, head_dim: c.head_dim!, eps: c.rms_norm_eps, theta: c.rope_theta,
  };
}

/** Exit status train_baseline.py uses for an allocation that failed. */
const BASELINE_OUT_OF_MEMORY = 3;

/** How a child process ended. */
interface ChildExit {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when the watchdog stopped it: its RSS in bytes at that moment. */
  stoppedAtRss?: number;
  /** Set when it could not be started. */
  startError?: Error;
}

/** Resident set size of a process in bytes, or undefined once it has gone. */
function residentBytes(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
    return line ? Number(line.split(/\s+/)[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs a child, and kills it when its RSS passes `memoryCap`: a step that needs more memory
 * than the machine has then ends as a reported outcome instead of waking the kernel's OOM
 * killer, which may pick another engineer's process. The RSS is polled every 100 ms, so the
 * cap keeps a margin below what is available.
 */
function runGuarded(command: string, args: string[], memoryCap: number, opts: { env?: NodeJS.ProcessEnv; showStderr: boolean }): Promise<ChildExit> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', opts.showStderr ? 'inherit' : 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    let stoppedAtRss: number | undefined;
    const watchdog = setInterval(() => {
      const rss = child.pid === undefined ? undefined : residentBytes(child.pid);
      if (rss !== undefined && rss > memoryCap && stoppedAtRss === undefined) {
        stoppedAtRss = rss;
        child.kill('SIGKILL');
      }
    }, 100);
    const finish = (exit: Omit<ChildExit, 'stdout' | 'stderr'>) => {
      clearInterval(watchdog);
      resolve({ ...exit, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ...(stoppedAtRss === undefined ? {} : { stoppedAtRss }) });
    };
    child.on('error', (error) => finish({ status: null, signal: null, startError: error }));
    child.on('close', (status, signal) => finish({ status, signal }));
  });
}

/** The outcome of a child that did not print its report, or undefined when it did. */
function failureOf(exit: ChildExit, memoryCap: number, what: string): Outcome | undefined {
  if (exit.stoppedAtRss !== undefined) {
    const mb = exit.stoppedAtRss / 2 ** 20;
    return { ran: false, reason: `stopped at ${gb(mb)} RSS: it needs more than the ${gb(memoryCap / 2 ** 20)} this machine can give it`, neededMoreThanMb: mb };
  }
  if (exit.startError) return { ran: false, reason: `${what} could not start: ${exit.startError.message}` };
  if (exit.signal) return { ran: false, reason: `${what} was killed by ${exit.signal}${exit.signal === 'SIGKILL' ? ' (the kernel OOM killer?)' : ''}` };
  if (exit.status !== 0) return { ran: false, reason: `${what} failed (status ${exit.status}): ${tail(exit.stderr) || 'its stderr is above'}` };
  return undefined;
}

/** What a child may use: what is available now, less 1 GiB for everything else on the machine (or less, if asked). */
function memoryCapNow(asked?: number): number {
  const free = Math.max(GiB, availableMemory() - GiB);
  return asked === undefined ? free : Math.min(asked, free);
}

async function runBaseline(python: string, args: BaselineArgs, askedCap?: number): Promise<Outcome> {
  const cap = memoryCapNow(askedCap);
  const exit = await runGuarded(python, [join(ROOT, 'bench/train_baseline.py'), JSON.stringify({ ...args, memory_limit_bytes: cap })], cap, {
    env: { ...process.env, OMP_NUM_THREADS: String(args.threads), OPENBLAS_NUM_THREADS: String(args.threads) },
    showStderr: false,
  });
  const last = exit.stdout.trim().split('\n').pop() ?? '';
  if (exit.status === BASELINE_OUT_OF_MEMORY) {
    const info = JSON.parse(last) as { detail: string; peak_rss_mb: number };
    return { ran: false, reason: `out of memory at ${gb(info.peak_rss_mb)} RSS (${info.detail})` };
  }
  if (exit.startError) return { ran: false, reason: `${python} could not start (${exit.startError.message}). Install Debian's python3-torch: apt-get install -y python3-torch` };
  return failureOf(exit, cap, `${python} bench/train_baseline.py`) ?? { ran: true, report: JSON.parse(last) as StepReport };
}

async function runWorker(args: WorkerArgs, askedCap?: number): Promise<Outcome> {
  const cap = memoryCapNow(askedCap);
  const exit = await runGuarded(process.execPath, [fileURLToPath(import.meta.url), '--worker', JSON.stringify(args)], cap, { showStderr: true });
  return failureOf(exit, cap, 'the embtune worker') ?? { ran: true, report: JSON.parse(exit.stdout.trim().split('\n').pop()!) as StepReport };
}

function tail(text: string | null | undefined, lines = 6): string {
  return (text ?? '').trim().split('\n').slice(-lines).join('\n');
}

// ------------------------------------------------------------------------------------ memory

/** /proc/meminfo MemAvailable in bytes (what can be allocated without swapping or the OOM killer). */
function availableMemory(): number {
  const line = readFileSync('/proc/meminfo', 'utf8').split('\n').find((l) => l.startsWith('MemAvailable:'));
  if (!line) throw new Error('/proc/meminfo has no MemAvailable line');
  return Number(line.split(/\s+/)[1]) * 1024;
}

function parameterCount(c: Qwen3Config): number {
  const [h, i, d, nq, nkv] = [c.hidden_size, c.intermediate_size, c.head_dim!, c.num_attention_heads, c.num_key_value_heads];
  const layer = h * nq * d * 2 + h * nkv * d * 2 + 3 * h * i + 2 * h + 2 * d;
  return c.vocab_size! * h + h + c.num_hidden_layers! * layer;
}

/**
 * Bytes the PyTorch step needs without checkpointing: the weights, plus what autograd keeps per
 * layer for backward in transformers' eager Qwen3 with PEFT LoRA on all seven linears, in floats
 * per token (H hidden, Q = heads·head_dim, K = kv_heads·head_dim, I intermediate, N·L attention
 * probabilities per query token):
 *   - each LoRA branch keeps dropout's mask and its output (the input of lora_A): 2·in per linear,
 *     so 2·(3H + Q + 2H + I) over q, k, v, o, gate, up, down;
 *   - each RMSNorm keeps its input and its normalised output (before the weight): the residual
 *     stream after attention and after the MLP (2H), their normalised copies (2H), q and k before
 *     and after q_norm/k_norm (2Q + 2K); q after RoPE (Q), k and v repeated to all heads (2Q),
 *     the softmax output (N·L); gate output, its SiLU and up (3I).
 * = 14H + 7Q + 2K + N·L + 5I: 47·H floats a token for the 0.6B shapes, 690 MB a layer at
 * 28 × 128 tokens (what `torch.autograd.graph.saved_tensors_hooks` counts on torch 1.13). The
 * process's RSS grows by 1.6× that per layer (1045 MiB a layer measured from 1 to 8 layers on the
 * 2-core / 24 GB machine: glibc keeps the freed forward temporaries), plus 0.5 GiB of runtime.
 */
function projectedBaselineBytes(c: Qwen3Config, sequences: number, seq: number): number {
  const [h, i, d, nq, nkv] = [c.hidden_size, c.intermediate_size, c.head_dim!, c.num_attention_heads, c.num_key_value_heads];
  const savedPerToken = 14 * h + 7 * nq * d + 2 * nkv * d + nq * seq + 5 * i;
  const allocatorFactor = 1.6;
  return 4 * parameterCount(c) + c.num_hidden_layers! * allocatorFactor * sequences * seq * savedPerToken * 4 + 0.5 * GiB;
}

function gb(mb: number): string {
  return `${(mb / 1024).toFixed(2)} GiB`;
}

// ------------------------------------------------------------------------------------ the table

interface ModeSpec {
  label: string;
  side: 'pytorch' | 'embtune';
  checkpointing: boolean;
  /** embtune only: a bfloat16 base (not equal settings: the floor compares float32 modes). */
  dtype?: 'bfloat16';
}

const MODES: ModeSpec[] = [
  { label: 'PyTorch+PEFT, checkpointing', side: 'pytorch', checkpointing: true },
  { label: 'PyTorch+PEFT, no checkpointing', side: 'pytorch', checkpointing: false },
  { label: 'embtune, no checkpointing', side: 'embtune', checkpointing: false },
  { label: 'embtune, checkpointing', side: 'embtune', checkpointing: true },
  { label: 'embtune, bf16 base, no checkpointing', side: 'embtune', checkpointing: false, dtype: 'bfloat16' },
];

interface ModeResult {
  spec: ModeSpec;
  /** Mean seconds of the timed steps, best round. */
  secondsPerStep?: number;
  peakRssMb?: number;
  warmupLoss?: number;
  reason?: string;
  /** Set when the watchdog stopped it: the RSS it had reached, MiB. */
  neededMoreThanMb?: number;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Folds the rounds of one mode: the fastest round's mean step time, the largest peak RSS. */
function foldRounds(spec: ModeSpec, outcomes: Outcome[]): ModeResult {
  const ran = outcomes.filter((o): o is { ran: true; report: StepReport } => o.ran);
  const failed = outcomes.find((o): o is Extract<Outcome, { ran: false }> => !o.ran);
  if (ran.length === 0) return { spec, reason: failed?.reason ?? 'not run', neededMoreThanMb: failed?.neededMoreThanMb };
  return {
    spec,
    secondsPerStep: Math.min(...ran.map((o) => mean(o.report.seconds.slice(1)))),
    peakRssMb: Math.max(...ran.map((o) => o.report.peak_rss_mb)),
    warmupLoss: ran[0]!.report.losses[0],
  };
}

function printTable(results: ModeResult[], tokensPerStep: number, full: boolean): void {
  const reference = results.find((r) => r.spec.side === 'pytorch' && r.spec.checkpointing && r.secondsPerStep !== undefined);
  const rate = (r: ModeResult) => tokensPerStep / r.secondsPerStep!;
  console.log(`\n${'mode'.padEnd(32)} ${'s/step'.padStart(8)} ${'tokens/s'.padStart(9)} ${'peak RSS'.padStart(9)}  ${'× PyTorch ckpt'.padStart(14)}  warm-up loss`);
  for (const r of results) {
    if (r.secondsPerStep === undefined) {
      console.log(`${r.spec.label.padEnd(32)} ${r.reason}`);
      continue;
    }
    const ratio = reference ? `${(rate(r) / rate(reference)).toFixed(2)}×` : 'n/a';
    console.log(
      `${r.spec.label.padEnd(32)} ${r.secondsPerStep.toFixed(2).padStart(8)} ${rate(r).toFixed(1).padStart(9)} ${gb(r.peakRssMb!).padStart(9)}  ${ratio.padStart(14)}  ${r.warmupLoss!.toFixed(6)}`,
    );
  }
  // bfloat16 rounds differently: only the float32 modes must agree to float32 rounding.
  const losses = results.filter((r) => r.warmupLoss !== undefined && r.spec.dtype === undefined).map((r) => r.warmupLoss!);
  if (losses.length > 1) {
    const spread = (Math.max(...losses) - Math.min(...losses)) / Math.abs(mean(losses));
    // The same weights, batch and dropout masks give the same first loss on every side (to float32 rounding).
    const verdict = spread <= 1e-5 ? 'agree: every mode ran the same step' : 'DIFFER: the modes did not run the same step';
    console.log(`\nwarm-up losses ${verdict} (largest relative difference ${spread.toExponential(1)})`);
  }
  printGoals(results, reference, rate, full);
}

function printGoals(results: ModeResult[], reference: ModeResult | undefined, rate: (r: ModeResult) => number, full: boolean): void {
  const find = (side: ModeSpec['side'], checkpointing: boolean, dtype?: 'bfloat16') =>
    results.find((r) => r.spec.side === side && r.spec.checkpointing === checkpointing && r.spec.dtype === dtype && r.secondsPerStep !== undefined);
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log(`\nissue 5 targets${full ? '' : ' (a partial model: the targets are about the full 28 layers)'}:`);
  for (const checkpointing of [true, false]) {
    const [theirs, ours] = [find('pytorch', checkpointing), find('embtune', checkpointing)];
    const what = checkpointing ? 'with checkpointing' : 'without checkpointing';
    if (theirs && ours) console.log(`  floor, equal settings ${what}: embtune ${(rate(ours) / rate(theirs)).toFixed(2)}× PyTorch (≥ 1.0×: ${verdict(rate(ours) >= rate(theirs))})`);
    else console.log(`  floor, equal settings ${what}: not measured (${[ours ? '' : 'embtune', theirs ? '' : 'PyTorch'].filter((x) => x).join(' and ')} did not run)`);
  }
  for (const dtype of [undefined, 'bfloat16'] as const) {
    const label = dtype ? 'embtune (bf16 base) without checkpointing' : 'embtune without checkpointing';
    const plain = find('embtune', false, dtype);
    if (!plain) {
      const stopped = results.find((r) => r.spec.side === 'embtune' && !r.spec.checkpointing && r.spec.dtype === dtype)?.neededMoreThanMb;
      const memory = stopped !== undefined && stopped > 12 * 1024 ? `NOT met: it needs more than ${gb(stopped)}` : 'not measured';
      console.log(`  goal, ${label} in ≤ 12 GiB: ${memory}; ≥ 2× PyTorch's checkpointed tokens/s: not measured (it did not run)`);
      continue;
    }
    console.log(`  goal, ${label} in ≤ 12 GiB: ${gb(plain.peakRssMb!)} (${verdict(plain.peakRssMb! <= 12 * 1024)})`);
    if (reference) {
      const ratio = rate(plain) / rate(reference);
      console.log(`  goal, ${label} ≥ 2× PyTorch's checkpointed tokens/s: ${ratio.toFixed(2)}× (${verdict(ratio >= 2)})`);
    } else console.log(`  goal, ${label} ≥ 2× PyTorch's checkpointed tokens/s: not measured (the baseline did not run)`);
  }
}

// ------------------------------------------------------------------------------------ the bench

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') return worker(JSON.parse(argv[1]!) as WorkerArgs);
  // --nproc N: data-parallel processes against one (bench/train_dp.ts).
  if (argv[0] === '--dp-worker' || argv.includes('--nproc')) return (await import('./train_dp.js')).mainDataParallel(argv);
  if (argv[0] === '--write-model') {
    const { folder, config, seed } = JSON.parse(argv[1]!) as { folder: string; config: Qwen3Config; seed: number };
    return writeRandomModelFolder(folder, config, seed, 'ones');
  }
  const o = parseOptions(argv);
  torch.setNumThreads(o.threads);
  if (o.check) {
    process.exitCode = (await check(o)) ? 0 : 1;
    return;
  }
  const config: Qwen3Config = { ...QWEN3_0_6B, num_hidden_layers: o.layers };
  const sequences = o.rows * (2 + o.negatives);
  const dir = mkdtempSync(join(tmpdir(), 'embtune-bench-train-'));
  try {
    const idsFile = join(dir, 'ids.json');
    writeFileSync(idsFile, JSON.stringify(randomTokenIds(sequences, o.seq, config.vocab_size!, o.seed)));
    console.log(
      `bench/train: Qwen3-Embedding-0.6B shapes, ${o.layers} layer(s), random weights, float32; batch ${o.rows} × (1 + 1 + ${o.negatives}) = ${sequences} × ${o.seq} tokens; ` +
        `LoRA r ${TRAINING.r}/α ${TRAINING.alpha}/dropout ${TRAINING.dropout} on all linears; InfoNCE τ ${TRAINING.temperature}, fake-negative mask; clip ${TRAINING.maxGradNorm}; AdamW β2 ${TRAINING.beta2}, wd ${TRAINING.weightDecay}`,
    );
    console.log(
      `${o.threads} thread(s), libtorch ${torch.libtorchVersion()} (BLAS ${torch.blasLibrary().kind}), ${(availableMemory() / GiB).toFixed(1)} GiB available, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ` +
        `1 warm-up + ${o.steps} timed step(s), ${o.rounds} round(s)`,
    );
    const folder = join(dir, 'model');
    writeModelFolderInChild(folder, config, o.seed);
    const runMode = modeRunner(o, config, folder, idsFile, sequences);
    const outcomes = new Map<ModeSpec, Outcome[]>(MODES.map((m) => [m, []]));
    for (let round = 0; round < o.rounds; round++) {
      // Alternate which side goes first, so that whatever one side leaves behind (a large
      // process exiting, the kernel reclaiming its memory) falls on both alike.
      const order = round % 2 === 0 ? MODES : [...MODES.filter((m) => m.side === 'embtune'), ...MODES.filter((m) => m.side === 'pytorch')];
      for (const mode of order) {
        process.stderr.write(`round ${round + 1}/${o.rounds}: ${mode.label}…\n`);
        const outcome: Outcome = o.checkpointingOnly && !mode.checkpointing ? { ran: false, reason: 'not run (--checkpointing-only)' } : await runMode(mode);
        if (!outcome.ran) process.stderr.write(`  ${outcome.reason}\n`);
        outcomes.get(mode)!.push(outcome);
      }
    }
    const full = o.layers === QWEN3_0_6B.num_hidden_layers && o.seq === 128 && sequences === 28;
    printTable(MODES.map((m) => foldRounds(m, outcomes.get(m)!)), sequences * o.seq, full);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one mode, or says why it is not run. */
function modeRunner(o: BenchOptions, config: Qwen3Config, folder: string, idsFile: string, sequences: number): (mode: ModeSpec) => Promise<Outcome> {
  return async (mode) => {
    if (mode.side === 'embtune') {
      return runWorker({ folder, idsFile, rows: o.rows, negatives: o.negatives, steps: o.steps + 1, seed: o.seed, threads: o.threads, checkpointing: mode.checkpointing, dtype: mode.dtype ?? 'float32' }, o.memoryCap);
    }
    if (o.skipBaseline) return { ran: false, reason: 'skipped (--skip-baseline)' };
    if (!mode.checkpointing) {
      const available = memoryCapNow(o.memoryCap);
      const projected = projectedBaselineBytes(config, sequences, o.seq);
      if (!o.baselineNoCheckpoint) return { ran: false, reason: `not run (opt-in: --baseline-no-checkpoint; projected ${(projected / GiB).toFixed(1)} GiB)` };
      if (projected > available) return { ran: false, reason: `skipped: projected ${(projected / GiB).toFixed(1)} GiB > the ${(available / GiB).toFixed(1)} GiB this machine can give it (it would run out of memory)` };
    }
    return runBaseline(o.python, { ...baselineSettings(config, o, idsFile), steps: o.steps + 1, checkpointing: mode.checkpointing }, o.memoryCap);
  };
}

function baselineSettings(config: Qwen3Config, o: BenchOptions, idsFile: string): Omit<BaselineArgs, 'steps' | 'checkpointing'> {
  return {
    threads: o.threads, config: baselineConfig(config), r: TRAINING.r, alpha: TRAINING.alpha, dropout: TRAINING.dropout, lr: TRAINING.lr, beta2: TRAINING.beta2,
    weight_decay: TRAINING.weightDecay, max_grad_norm: TRAINING.maxGradNorm, temperature: TRAINING.temperature, rows: o.rows, negatives: o.negatives, ids: idsFile, seed: o.seed,
  };
}

// ------------------------------------------------------------------------------------ --check

/** Learning rate of the --check step: large enough that the update stands out of float32 rounding. */
const CHECK_LR = 1e-3;

/** Tolerances: float32 through 2 layers; the loss's 1/τ = 100 amplifies rounding of the cosines. */
const CHECK_TOLERANCE = { loss: 1e-5, grad: 1e-4, after: 1e-3 * CHECK_LR };

/** What one side's --check step gives: loss, grad norm, gradients before clipping and the adapter after AdamW, by `<module>.lora_A.weight`. */
interface CheckStep {
  loss: number;
  gradNorm: number;
  grads: Map<string, Float32Array>;
  after: Map<string, Float32Array>;
}

/**
 * Equal settings on a tiny model: a random model folder (norms not ones), loaded as `embtune
 * train` loads it, its adapter's B set to random values (so that A's gradients are not zero);
 * everything goes to a safetensors file that both PyTorch modes read; every side runs one step
 * with the same batch and seed; loss, every LoRA gradient before clipping and the adapter after
 * AdamW must agree, for each embtune mode against each PyTorch mode. Returns whether they do.
 */
async function check(o: BenchOptions): Promise<boolean> {
  const [rows, negatives, seq] = [4, 5, 16];
  const ids = randomTokenIds(rows * (2 + negatives), seq, CHECK_CONFIG.vocab_size!, o.seed);
  const dir = mkdtempSync(join(tmpdir(), 'embtune-bench-train-check-'));
  try {
    const folder = join(dir, 'model');
    writeRandomModelFolder(folder, CHECK_CONFIG, o.seed, 'around-one');
    const idsFile = join(dir, 'ids.json');
    writeFileSync(idsFile, JSON.stringify(ids));
    const weightsFile = join(dir, 'weights.safetensors');
    const ours = new Map<string, CheckStep>();
    for (const checkpointing of [false, true]) {
      const run = await setUpRun(folder, ids, rows, negatives, { checkpointing, seed: o.seed, lr: CHECK_LR });
      try {
        randomiseB(run.loaded, o.seed + 1000);
        if (!checkpointing) writeCheckWeights(run.loaded, weightsFile);
        const step = trainStep(run, o.seed + 1, true);
        if (!checkpointing) console.log(`bench/train --check: ${CHECK_CONFIG.num_hidden_layers} layers, hidden ${CHECK_CONFIG.hidden_size}, ${rows} × (2 + ${negatives}) × ${seq} tokens, dropout ${TRAINING.dropout}, fake-negative mask (${step.fakeNegatives} entries masked)`);
        ours.set(`embtune${checkpointing ? ' (checkpointing)' : ''}`, { loss: step.loss, gradNorm: step.gradNorm, grads: byModule(run.loaded, step.grads!), after: adapterValues(run.loaded) });
      } finally {
        disposeRun(run);
      }
    }
    const theirs = new Map<string, CheckStep>();
    for (const checkpointing of [false, true]) {
      const label = `PyTorch${checkpointing ? ' (checkpointing)' : ''}`;
      const result = join(dir, `result-${checkpointing}.safetensors`);
      const outcome = await runBaseline(o.python, { ...baselineSettings(CHECK_CONFIG, { ...o, rows, negatives }, idsFile), lr: CHECK_LR, steps: 1, checkpointing, check: true, weights: weightsFile, result });
      if (outcome.ran) theirs.set(label, readBaselineCheck(result));
      else console.log(`${label}: ${outcome.reason}`);
    }
    let ok = theirs.size === 2;
    for (const [ourLabel, a] of ours) {
      console.log(`${ourLabel}: loss ${a.loss.toFixed(6)}, grad norm ${a.gradNorm.toExponential(4)}`);
      for (const [theirLabel, b] of theirs) ok = compareSteps(`  vs ${theirLabel}`, a, b) && ok;
    }
    const [plain, checkpointed] = [...theirs.values()];
    if (plain && checkpointed) ok = compareSteps(`PyTorch vs PyTorch (checkpointing)`, plain, checkpointed) && ok;
    console.log(ok ? 'check passed: every side computes the same step' : 'check FAILED');
    return ok;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fills every B with uniform values drawn from manualSeed(seed), in module order (PEFT's init leaves B zero). */
function randomiseB(loaded: LoadedTrainable, seed: number): void {
  torch.manualSeed(seed);
  noGrad(() => {
    for (const layer of loaded.adapter!.layers.values()) layer.B.uniform_(-0.2, 0.2);
  });
}

/** Base weights under their checkpoint names, the adapter's A and B as `<module>.lora_A.weight` / `.lora_B.weight`. */
function writeCheckWeights(loaded: LoadedTrainable, path: string): void {
  const store = loaded.embedder.encoder.weights;
  const tensors = new Map<string, Tensor>(store.keys().map((name) => [name, store.get(name)]));
  for (const layer of loaded.adapter!.layers.values()) {
    tensors.set(`${layer.module}.lora_A.weight`, layer.A.detach());
    tensors.set(`${layer.module}.lora_B.weight`, layer.B.detach());
  }
  saveSafetensors(path, tensors);
}

/** Gradients by PEFT name → by `<module>.lora_A.weight`, the names of the check files. */
function byModule(loaded: LoadedTrainable, grads: Map<string, Float32Array>): Map<string, Float32Array> {
  const adapter = loaded.adapter!;
  return new Map([...adapter.layers.values()].flatMap((l) => (['A', 'B'] as const).map((m) => [`${l.module}.lora_${m}.weight`, grads.get(adapter.peftName(l.module, m))!] as const)));
}

function adapterValues(loaded: LoadedTrainable): Map<string, Float32Array> {
  return new Map([...loaded.adapter!.layers.values()].flatMap((l) => [
    [`${l.module}.lora_A.weight`, l.A.toTypedArray<'float32'>()] as const,
    [`${l.module}.lora_B.weight`, l.B.toTypedArray<'float32'>()] as const,
  ]));
}

/** The result file of `train_baseline.py` in check mode: loss, grad_norm, grad.<name>, after.<name>. */
function readBaselineCheck(path: string): CheckStep {
  const tensors = loadSafetensors(path);
  try {
    const pick = (prefix: string) => new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t.toTypedArray<'float32'>()]));
    return { loss: tensors.get('loss')!.item(), gradNorm: tensors.get('grad_norm')!.item(), grads: pick('grad.'), after: pick('after.') };
  } finally {
    torch.dispose([...tensors.values()]);
  }
}

/** Largest |a − b| over the tensors of `b` (every one must be in `a`). */
function maxAbsDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { diff: number; scale: number } {
  let [diff, scale] = [0, 0];
  for (const [name, y] of b) {
    const x = a.get(name);
    if (!x || x.length !== y.length) throw new Error(`--check: tensor ${name} is missing on one side or has another size`);
    for (let i = 0; i < y.length; i++) {
      diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
      scale = Math.max(scale, Math.abs(y[i]!));
    }
  }
  return { diff, scale };
}

function compareSteps(label: string, a: CheckStep, b: CheckStep): boolean {
  if (a.grads.size !== b.grads.size) throw new Error(`--check: ${label}: ${a.grads.size} gradients against ${b.grads.size}`);
  const lossDiff = Math.abs(a.loss - b.loss) / Math.abs(b.loss);
  const grads = maxAbsDifference(a.grads, b.grads);
  const relGrad = grads.diff / grads.scale;
  const after = afterWithinTolerance(a, b, CHECK_TOLERANCE.grad * grads.scale);
  const ok = lossDiff <= CHECK_TOLERANCE.loss && relGrad <= CHECK_TOLERANCE.grad && after.worst <= 1;
  console.log(
    `${label}: loss ${lossDiff.toExponential(1)} (≤ ${CHECK_TOLERANCE.loss}), LoRA gradients ${relGrad.toExponential(1)} of max |g| (≤ ${CHECK_TOLERANCE.grad}), ` +
      `adapter after AdamW ${after.diff.toExponential(1)} (${(100 * after.worst).toFixed(0)}% of its per-weight bound) — ${ok ? 'same' : 'DIFFERENT'}`,
  );
  return ok;
}

/**
 * The adapters after the step, weight by weight, against what AdamW's first step allows for
 * gradients that agree within the gradient tolerance `delta`. That step moves a weight by
 * lr·ĝ/(|ĝ|+ε), ĝ the clipped gradient; clipping a norm of ~1e3 to 1 leaves many ĝ near ε = 1e-8,
 * where a rounding δ of the gradient becomes lr·ε·c·δ/(|ĝ|+ε)² (c the clip factor) — far above
 * float32's rounding of the weights, which bounds the rest. Returns the largest difference and the
 * largest difference/bound ratio (≤ 1 passes).
 */
function afterWithinTolerance(a: CheckStep, b: CheckStep, delta: number): { diff: number; worst: number } {
  const clip = Math.min(1, TRAINING.maxGradNorm / (b.gradNorm + 1e-6));
  const eps = DEFAULTS.adamEpsilon;
  let [diff, worst] = [0, 0];
  for (const [name, y] of b.after) {
    const x = a.after.get(name)!;
    const g = b.grads.get(name)!;
    for (let i = 0; i < y.length; i++) {
      const d = Math.abs(x[i]! - y[i]!);
      const bound = CHECK_TOLERANCE.after + Math.min(2 * CHECK_LR, (CHECK_LR * eps * clip * delta) / (Math.abs(clip * g[i]!) + eps) ** 2);
      diff = Math.max(diff, d);
      worst = Math.max(worst, d / bound);
    }
  }
  return { diff, worst };
}

await main().catch((err: unknown) => {
  console.error(err instanceof UsageError ? err.message : err);
  process.exitCode = 2;
});
