/**
 * The training loop of `swift sft --task_type embedding --loss_type infonce` (REFERENCE §3):
 * micro-batches laid out as ms-swift's collator does (per row: anchor, positive, negatives),
 * right padding, gradient accumulation (each micro-batch loss divided by the number of
 * micro-batches in the window, gradients summed), clipping, AdamW, the LR schedule, logging,
 * evaluation and checkpoints every N steps.
 *
 * Determinism: the data order of epoch e is a permutation seeded by (dataSeed, e); dropout of
 * micro-batch k of step s draws from the engine's generator re-seeded by (seed, s, k). So a run
 * resumed from checkpoint-N replays exactly what the uninterrupted run would have done.
 */
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { AdamW, F, LambdaLR, clipGradNorm, enableGrad, manualSeed, noGrad, tidy, type Tensor } from '../torch/index.js';
import type { TokenIds } from '../tokenizers/index.js';
import { padBatch } from '../embed/embedder.js';
import { defaultRng } from '../data/numpy_random.js';
import { accumulationStepsOf, evalStepsOf, learningRateOf, truncationStrategyOf, type TrainConfig } from './config.js';
import type { TrainExample } from './examples.js';
import { pruneCheckpoints, readTrainerState, restoreOptimizer, saveCheckpoint, type LogRecord, type TrainerState } from './checkpoint.js';
import { scheduleMultiplier } from './schedule.js';
import { gradCacheForwardBackward } from './grad_cache.js';
import type { DataParallel } from './data_parallel.js';

/** What the trainer needs from a model (LoRA-wrapped or fully trainable). */
export interface TrainableModel {
  readonly padTokenId: number;
  /** Where the model runs (`cpu`, `cuda:0`, …; default the CPU): batches are made there. */
  readonly device?: string;
  /** Token ids with the model's template (ms-swift qwen3_emb: text + <|endoftext|>), untruncated. */
  tokenize(texts: string[]): TokenIds[];
  /** The model's own sequence limit (config.json `max_position_embeddings`): --max-length's default. Absent: none. */
  readonly maxPositions?: number;
  /** Template tokens before and after each text (BERT `[CLS]`/`[SEP]`, Qwen3 `<|endoftext|>`), kept when a text is cut. Default: none before, one after. */
  readonly templateTokens?: { prefix: number; suffix: number };
  /** Pooled last hidden states [B, H] in float32, not normalised, differentiable. */
  encode(inputIds: Tensor, attentionMask: Tensor): Tensor;
  /** Trainable parameters by the names they are saved under. */
  trainableParameters(): ReadonlyMap<string, Tensor>;
  /** Dropout on (training) or off. */
  train(mode: boolean): void;
  /** Writes the trainable state (PEFT adapter folder, or a full model folder) into `dir`. */
  save(dir: string): void;
  /** Loads trainable values saved by `save` (resuming). */
  loadTrainable(dir: string): void;
  /** Backward from the loss (default `loss.backward()`; gradient checkpointing recomputes layers here). */
  backward?(loss: Tensor): void;
}

/** The loss and the evaluation metrics (InfoNCE; REFERENCE §3.3, §3.4, §10). */
export interface Objective {
  /** Loss over embeddings laid out per row as [anchor, positive, negatives…]. */
  loss(embeddings: Tensor, groupSizes: number[]): Tensor;
  /** eval_margin, eval_mean_pos, eval_mean_neg and retrieval metrics from all eval embeddings. */
  metrics(embeddings: Float32Array[], groupSizes: number[], examples: TrainExample[]): Record<string, number>;
  /** Re-seeds the loss's own draws (hard-negative padding), so a resumed run replays them. */
  reseed?(seed: number): void;
  /** Data-parallel: take the loss over every rank's gathered embeddings (ms-swift's use_batch). */
  readonly gatherAcrossRanks?: boolean;
}

export interface TrainEvents {
  onLog?(record: LogRecord): void;
  onStep?(progress: { step: number; maxSteps: number; loss: number; lr: number }): void;
  onCheckpoint?(path: string): void;
  onMessage?(text: string): void;
}

export interface TrainResult {
  runDir: string;
  globalStep: number;
  logHistory: LogRecord[];
  /** Why the run ended: finished, interrupted (checkpoint saved) or a non-finite loss. */
  stopped: 'finished' | 'interrupted' | 'nonfinite';
  lastCheckpoint?: string;
}

interface TokenizedExample {
  ids: TokenIds[];
}

export class NonFiniteLossError extends Error {}

export class Trainer {
  private readonly params: ReadonlyMap<string, Tensor>;
  private readonly optimizer: AdamW;
  private readonly scheduler: LambdaLR;
  private readonly train: TokenizedExample[];
  private readonly eval: TokenizedExample[];
  private readonly microPerEpoch: number;
  private readonly evalExamples: TrainExample[];
  readonly maxSteps: number;
  private state: TrainerState;
  private interrupted = false;
  private order: { epoch: number; rows: number[] } | undefined;

  constructor(
    readonly config: TrainConfig,
    readonly model: TrainableModel,
    readonly objective: Objective,
    trainExamples: TrainExample[],
    evalExamples: TrainExample[],
    readonly runDir: string,
    readonly events: TrainEvents = {},
    /** Data-parallel training (data_parallel.ts): this rank's shard, averaged gradients, rank 0 writes. */
    readonly parallel?: DataParallel,
  ) {
    const train = this.tokenizeAll(trainExamples, 'training');
    const held = this.tokenizeAll(evalExamples, 'held-out');
    this.train = train.rows;
    this.eval = held.rows;
    this.evalExamples = held.kept;
    const bs = config.perDeviceTrainBatchSize;
    const rows = parallel ? parallel.shardSize(this.train.length) : this.train.length;
    this.microPerEpoch = config.dataloaderDropLast ? Math.floor(rows / bs) : Math.ceil(rows / bs);
    if (this.microPerEpoch === 0) throw new Error(`${this.train.length} training rows make no full batch of ${bs} (dataloader_drop_last); lower --per-device-train-batch-size`);
    const updatesPerEpoch = Math.ceil(this.microPerEpoch / accumulationStepsOf(config));
    this.maxSteps = config.maxSteps > 0 ? config.maxSteps : Math.ceil(config.numTrainEpochs * updatesPerEpoch);
    this.params = model.trainableParameters();
    this.optimizer = new AdamW([...this.params.values()], {
      lr: learningRateOf(config),
      betas: [config.adamBeta1, config.adamBeta2],
      eps: config.adamEpsilon,
      weight_decay: config.weightDecay,
    });
    const warmup = config.warmupSteps > 0 ? config.warmupSteps : Math.ceil(config.warmupRatio * this.maxSteps);
    this.scheduler = new LambdaLR(this.optimizer, (s) => scheduleMultiplier(config.lrSchedulerType, s, warmup, this.maxSteps));
    this.state = { globalStep: 0, epoch: 0, microBatch: 0, logHistory: [], maxSteps: this.maxSteps, fingerprint: fingerprintOf(config, this.train.length, parallel?.worldSize ?? 1) };
  }

  /** Asks the loop to stop after the current optimizer step and save a checkpoint (Ctrl-C). */
  interrupt(): void {
    this.interrupted = true;
  }

  /** Continues from a checkpoint folder written by this trainer. */
  resumeFrom(folder: string): void {
    const state = readTrainerState(folder);
    const mine = JSON.stringify(this.state.fingerprint);
    if (JSON.stringify(state.fingerprint) !== mine) {
      throw new Error(`${folder}: the checkpoint was written with other settings (${JSON.stringify(state.fingerprint)}), this run has ${mine}`);
    }
    this.model.loadTrainable(folder);
    restoreOptimizer(folder, this.optimizer, this.scheduler, this.params);
    this.state = { ...state, maxSteps: this.maxSteps };
  }

  get globalStep(): number {
    return this.state.globalStep;
  }

  async run(): Promise<TrainResult> {
    const c = this.config;
    const accumulation = accumulationStepsOf(c);
    let lastCheckpoint: string | undefined;
    let pendingLoss = 0;
    let pendingSteps = 0;
    this.parallel?.broadcastParameters([...this.params.values()]);
    if (this.state.globalStep === 0 && this.eval.length > 0 && this.isMain) this.evaluate();
    while (this.state.globalStep < this.maxSteps) {
      if (this.state.microBatch >= this.microPerEpoch) {
        this.state.epoch += 1;
        this.state.microBatch = 0;
      }
      const order = this.epochOrder(this.state.epoch);
      const window = Math.min(accumulation, this.microPerEpoch - this.state.microBatch);
      const step = this.state.globalStep + 1;
      this.model.train(true);
      let loss = 0;
      for (let k = 0; k < window; k++) {
        const rows = this.microBatchRows(order, this.state.microBatch + k);
        const seed = mixSeed(c.seed, step, k);
        manualSeed(seed);
        this.objective.reseed?.(seed);
        loss += this.forwardBackward(rows, window);
      }
      if (this.parallel) {
        this.parallel.averageGradients([...this.params.values()]);
        loss = this.parallel.agree(loss, false).loss;
      }
      if (!Number.isFinite(loss)) {
        this.optimizer.zero_grad();
        this.events.onMessage?.(`step ${step}: the loss is ${loss}; stopping. The last good checkpoint is ${lastCheckpoint ?? 'none (no checkpoint was saved yet)'}.`);
        return this.result('nonfinite', lastCheckpoint);
      }
      const gradNorm = c.maxGradNorm > 0 ? clipGradNorm([...this.params.values()], c.maxGradNorm) : totalNorm([...this.params.values()]);
      const lr = this.optimizer.param_groups[0]!.lr;
      this.optimizer.step();
      this.optimizer.zero_grad();
      this.scheduler.step();
      this.state.globalStep = step;
      this.state.microBatch += window;
      pendingLoss += loss;
      pendingSteps += 1;
      if (this.isMain) this.events.onStep?.({ step, maxSteps: this.maxSteps, loss, lr }); // one progress bar, rank 0's (as HF's tqdm)
      if (step % c.loggingSteps === 0 || (step === 1 && c.loggingFirstStep) || step === this.maxSteps) {
        this.log({ step, epoch: round(this.epochProgress(), 4), loss: pendingLoss / pendingSteps, grad_norm: gradNorm, learning_rate: lr, lr });
        pendingLoss = 0;
        pendingSteps = 0;
      }
      const last = step === this.maxSteps;
      if (this.eval.length > 0 && this.isMain && (step % evalStepsOf(c) === 0 || last)) this.evaluate();
      await yieldToEventLoop(); // lets Ctrl-C (SIGINT) reach interrupt()
      // Every rank stops at the same step, whichever of them was interrupted.
      if (this.parallel) this.interrupted = this.parallel.agree(0, this.interrupted).interrupted;
      if (step % c.saveSteps === 0 || last || this.interrupted) {
        lastCheckpoint = this.saveCheckpoint();
      }
      if (this.interrupted && !last) return this.result('interrupted', lastCheckpoint);
    }
    return this.result('finished', lastCheckpoint);
  }

  /** One micro-batch: forward, loss / window, backward. Returns its share of the step loss. */
  private forwardBackward(rows: TokenizedExample[], window: number): number {
    return tidy(() => {
      const flat = rows.flatMap((r) => r.ids);
      const groupSizes = rows.map((r) => r.ids.length - 1);
      const chunk = this.config.gradientCacheChunkSize;
      if (chunk !== undefined && chunk < flat.length) {
        return gradCacheForwardBackward(this.model, flat, chunk, (embeddings) => this.trainingLoss(embeddings, groupSizes).div(window));
      }
      const loss = enableGrad(() => {
        const { inputIds, attentionMask } = padRight(flat, this.model.padTokenId, this.model.device);
        const pooled = this.model.encode(inputIds, attentionMask);
        return this.trainingLoss(pooled, groupSizes).div(window);
      });
      const value = loss.item();
      if (Number.isFinite(value)) {
        if (this.model.backward) this.model.backward(loss);
        else loss.backward();
      }
      return value;
    });
  }

  /** The micro-batch loss; data-parallel with in-batch negatives, over every rank's rows (ms-swift). */
  private trainingLoss(pooled: Tensor, groupSizes: number[]): Tensor {
    if (!this.parallel || !this.objective.gatherAcrossRanks) return this.lossOf(pooled, groupSizes);
    const all = this.parallel.gatherEmbeddings(pooled, groupSizes);
    return this.lossOf(all.embeddings, all.groupSizes);
  }

  /** Whether this process evaluates, logs and writes checkpoints (rank 0, or the only process). */
  private get isMain(): boolean {
    return this.parallel?.isMain ?? true;
  }

  /** InfoNCE on the normalised embeddings, summed over Matryoshka dimensions when given (§3.7). */
  private lossOf(pooled: Tensor, groupSizes: number[]): Tensor {
    const dims = this.config.mrlDims;
    if (dims.length === 0) return this.objective.loss(F.normalize(pooled, 2, -1), groupSizes);
    const width = pooled.size(-1) as number;
    let total: Tensor | undefined;
    for (const d of dims) {
      if (d > width) throw new Error(`--mrl-dims ${d} is larger than the embedding (${width})`);
      const part = this.objective.loss(F.normalize(pooled.narrow(-1, 0, d), 2, -1), groupSizes);
      total = total ? total.add(part) : part;
    }
    return total!;
  }

  /** eval_loss (per eval batch, averaged) and the objective's metrics on the held-out rows. */
  evaluate(): Record<string, number> {
    const c = this.config;
    this.model.train(false);
    const vectors: Float32Array[] = [];
    let lossSum = 0;
    let batches = 0;
    for (let start = 0; start < this.eval.length; start += c.perDeviceEvalBatchSize) {
      const rows = this.eval.slice(start, start + c.perDeviceEvalBatchSize);
      tidy(() =>
        noGrad(() => {
          const { inputIds, attentionMask } = padRight(rows.flatMap((r) => r.ids), this.model.padTokenId, this.model.device);
          const pooled = this.model.encode(inputIds, attentionMask);
          lossSum += this.lossOf(pooled, rows.map((r) => r.ids.length - 1)).item();
          batches += 1;
          const normalized = F.normalize(pooled, 2, -1);
          const flat = normalized.to({ device: 'cpu' }).toTypedArray<'float32'>();
          const width = normalized.size(-1) as number;
          for (let i = 0; i < flat.length; i += width) vectors.push(flat.slice(i, i + width));
        }),
      );
    }
    const metrics = this.objective.metrics(vectors, this.eval.map((r) => r.ids.length - 1), this.evalExamples);
    const record: LogRecord = { step: this.state.globalStep, epoch: round(this.epochProgress(), 4), eval_loss: lossSum / batches };
    for (const [k, v] of Object.entries(metrics)) record[k.startsWith('eval_') ? k : `eval_${k}`] = v;
    this.log(record);
    const ndcg = record['eval_ndcg@10'];
    if (typeof ndcg === 'number' && (this.state.bestMetric === undefined || ndcg > this.state.bestMetric)) {
      this.state.bestMetric = ndcg;
      this.state.bestStep = this.state.globalStep;
    }
    return metrics;
  }

  private saveCheckpoint(): string {
    const folder = join(this.runDir, `checkpoint-${this.state.globalStep}`);
    if (!this.isMain) return folder; // rank 0 writes it; every rank can resume from it
    saveCheckpoint(folder, (dir) => this.model.save(dir), this.state, this.optimizer, this.scheduler, this.params);
    pruneCheckpoints(this.runDir, this.config.saveTotalLimit, this.state.bestStep);
    this.events.onCheckpoint?.(folder);
    return folder;
  }

  private log(record: LogRecord): void {
    this.state.logHistory.push(record);
    if (this.isMain) this.events.onLog?.(record);
  }

  private result(stopped: TrainResult['stopped'], lastCheckpoint: string | undefined): TrainResult {
    return { runDir: this.runDir, globalStep: this.state.globalStep, logHistory: this.state.logHistory, stopped, lastCheckpoint };
  }

  private epochProgress(): number {
    return this.state.epoch + this.state.microBatch / this.microPerEpoch;
  }

  /** The data order of `epoch` (drawn once per epoch, not once per step). */
  private epochOrder(epoch: number): number[] {
    if (this.order?.epoch === epoch) return this.order.rows;
    const order = this.drawOrder(epoch);
    this.order = { epoch, rows: this.parallel ? this.parallel.shard(order) : order };
    return this.order.rows;
  }

  private drawOrder(epoch: number): number[] {
    const n = this.train.length;
    return this.config.datasetShuffle ? Array.from(defaultRng(mixSeed(this.config.dataSeed, epoch, 0)).permutation(n)) : Array.from({ length: n }, (_, i) => i);
  }

  private microBatchRows(order: number[], micro: number): TokenizedExample[] {
    const bs = this.config.perDeviceTrainBatchSize;
    return order.slice(micro * bs, (micro + 1) * bs).map((i) => this.train[i]!);
  }

  /** The run's max length: --max-length, else the model's `max_position_embeddings` (ms-swift's `max_length` default). */
  get maxLength(): number | undefined {
    return this.config.maxLength ?? this.model.maxPositions;
  }

  /**
   * Token ids of every example. A text longer than the max length either drops its row
   * ('delete', ms-swift's) or is cut keeping the template's tokens: 'right' keeps the start of
   * the text, 'left' its end (ms-swift's truncation_strategy; the `[CLS]` / `[SEP]` /
   * `<|endoftext|>` the pooling reads stay in place). See `truncationStrategyOf` for the default.
   */
  private tokenizeAll(examples: TrainExample[], what: string): { rows: TokenizedExample[]; kept: TrainExample[] } {
    const max = this.maxLength;
    const strategy = truncationStrategyOf(this.config);
    const template = this.model.templateTokens ?? { prefix: 0, suffix: 1 };
    const rows: TokenizedExample[] = [];
    const kept: TrainExample[] = [];
    let dropped = 0;
    let cut = 0;
    for (const e of examples) {
      let ids = this.model.tokenize([e.query, e.positive, ...e.negatives]);
      if (max !== undefined && ids.some((r) => r.length > max)) {
        if (strategy === 'delete') {
          dropped++;
          continue;
        }
        cut++;
        ids = ids.map((r) => (r.length > max ? truncateIds(r, max, strategy, template) : r));
      }
      rows.push({ ids });
      kept.push(e);
    }
    const limit = this.config.maxLength !== undefined ? `--max-length ${max} tokens` : `the model's ${max} positions (max_position_embeddings)`;
    if (dropped > 0) this.events.onMessage?.(`${dropped.toLocaleString('en-US')} ${what} rows have a text longer than ${limit} and were left out (--truncation-strategy delete; 'right' or 'left' cuts them instead)`);
    if (cut > 0) this.events.onMessage?.(`${cut.toLocaleString('en-US')} ${what} rows had a text cut to ${limit} (--truncation-strategy ${strategy})`);
    if (rows.length === 0 && examples.length > 0) throw new Error(`every ${what} row has a text longer than ${limit}; raise --max-length or use --truncation-strategy right`);
    return { rows, kept };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** A 32-bit seed from (seed, a, b), so each step/epoch gets its own reproducible stream. */
export function mixSeed(seed: number, a: number, b: number): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const v of [a, b]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * `ids` cut to `max` tokens, the template's `prefix` and `suffix` tokens kept: 'right' keeps the
 * first tokens of the text, 'left' the last (HF's truncation_side).
 */
export function truncateIds(ids: TokenIds, max: number, side: 'right' | 'left', template: { prefix: number; suffix: number }): TokenIds {
  if (ids.length <= max) return ids;
  const { prefix, suffix } = template;
  const room = max - prefix - suffix;
  if (room < 1) throw new Error(`max length ${max} leaves no room for text between the template's ${prefix + suffix} special tokens`);
  const body = side === 'right' ? ids.slice(prefix, prefix + room) : ids.slice(ids.length - suffix - room, ids.length - suffix);
  return [...ids.slice(0, prefix), ...body, ...ids.slice(ids.length - suffix)];
}

/** Right padding (ms-swift pads right while training, REFERENCE §3.2), on the model's device. */
export function padRight(rows: TokenIds[], padId: number, device: string = 'cpu'): { inputIds: Tensor; attentionMask: Tensor } {
  return padBatch(rows, padId, 'right', device);
}

function totalNorm(params: Tensor[]): number {
  return tidy(() =>
    noGrad(() => {
      let sum = 0;
      for (const p of params) if (p.grad) sum += p.grad.pow(2).sum().item();
      return Math.sqrt(sum);
    }),
  );
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function fingerprintOf(c: TrainConfig, trainRows: number, worldSize: number): Record<string, unknown> {
  return {
    // The data order depends on the world size; one process keeps the fingerprint it always had.
    ...(worldSize > 1 ? { worldSize } : {}),
    trainRows,
    perDeviceTrainBatchSize: c.perDeviceTrainBatchSize,
    gradientAccumulationSteps: accumulationStepsOf(c),
    seed: c.seed,
    dataSeed: c.dataSeed,
    datasetShuffle: c.datasetShuffle,
    trainType: c.trainType,
  };
}
