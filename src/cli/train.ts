/**
 * `embtune train`: LoRA (or full) fine-tuning of an embedding model with InfoNCE, with
 * `swift sft --task_type embedding` flag names and defaults (REFERENCE §3–§4). Every flag also
 * has its snake_case spelling (`--learning_rate`), and a YAML/JSON `--config` file can hold any
 * of them (flags win).
 */
import { Command, Option } from 'commander';
import { DEFAULTS } from '../train/config.js';
import { LAUNCH_FLAGS, LAUNCH_KEYS } from './launch.js';
import { DEVICE_HELP, TSV_QUOTING_HELP } from './io.js';

const d = DEFAULTS;

/** [flag, help] — the value of every flag is checked by resolveConfig, with the flag's name in the error. */
const FLAGS: [string, string][] = [
  ['--model <dir|org/name>', 'the model to fine-tune: a Qwen3-Embedding or BERT model folder, or a hub id'],
  ['--dataset <files...>', 'training data: JSONL/JSON/CSV/TSV/Parquet files of {query, response, rejected_response: [...]} (ms-swift ≤3.8, the tutorial\'s), {messages, positive_messages, negative_messages} (≥3.9), or prompt/response columns'],
  ['--val-dataset <files...>', 'held-out data in the same formats (instead of --split-dataset-ratio)'],
  ['--config <file>', 'YAML or JSON file of options (snake_case or kebab-case keys); flags override it'],
  ['--output-dir <dir>', `where runs go: <output-dir>/v<N>-<timestamp>/checkpoint-<step>/ (default ${d.outputDir})`],
  ['--train-type <type>', `'lora' (PEFT adapter) or 'full' (every weight) (default ${d.trainType})`],
  ['--loss-type <type>', `'infonce' (default ${d.lossType})`],
  ['--adapter <dir>', 'continue training an existing PEFT adapter (its LoRA config wins over the --lora-* flags)'],
  ['--resume-from-checkpoint <dir>', 'continue an interrupted run from its checkpoint-<step> folder (same data and batch settings)'],
  ['--torch-dtype <dtype>', `base weights 'float32' or 'bfloat16' (LoRA adapters stay float32) (default ${d.dtype})`],
  ['--device <device>', `${DEVICE_HELP}; the LoRA matrices, optimizer state and every batch live there too (default ${d.device})`],
  ['--lora-rank <r>', `LoRA rank (default ${d.loraRank})`],
  ['--lora-alpha <alpha>', `LoRA alpha; scaling = alpha / r (default ${d.loraAlpha})`],
  ['--lora-dropout <p>', `dropout on the LoRA input, training only (default ${d.loraDropout})`],
  ['--target-modules <names...>', `modules that get LoRA: names (q_proj v_proj …) or all-linear (default ${d.targetModules.join(' ')})`],
  ['--use-rslora <bool>', `rank-stabilised LoRA: scaling = alpha / sqrt(r) (default ${d.useRslora})`],
  ['--init-weights <kind>', `LoRA init: 'true' (A kaiming-uniform, B zero) or 'gaussian' (default ${d.initWeights})`],
  ['--learning-rate <lr>', 'peak learning rate (default 1e-4 for LoRA, 1e-5 for full)'],
  ['--weight-decay <wd>', `AdamW decoupled weight decay (default ${d.weightDecay}, ms-swift's)`],
  ['--adam-beta1 <b1>', `AdamW beta1 (default ${d.adamBeta1})`],
  ['--adam-beta2 <b2>', `AdamW beta2 (default ${d.adamBeta2}, ms-swift's)`],
  ['--adam-epsilon <eps>', `AdamW epsilon (default ${d.adamEpsilon})`],
  ['--max-grad-norm <n>', `clip the global gradient 2-norm to n; 0 = no clipping (default ${d.maxGradNorm})`],
  ['--lr-scheduler-type <type>', `cosine, linear, constant or constant_with_warmup (default ${d.lrSchedulerType})`],
  ['--warmup-ratio <r>', `fraction of the steps with linear warmup (default ${d.warmupRatio})`],
  ['--warmup-steps <n>', 'warmup steps (overrides --warmup-ratio when > 0)'],
  ['--num-train-epochs <n>', `passes over the training data (default ${d.numTrainEpochs})`],
  ['--max-steps <n>', 'stop after n optimizer steps (overrides --num-train-epochs when > 0)'],
  ['--per-device-train-batch-size <n>', `rows per micro-batch; each row brings its query, positive and negatives, and all of them are in-batch negatives for the other rows (default ${d.perDeviceTrainBatchSize})`],
  ['--per-device-eval-batch-size <n>', `rows per eval batch for eval_loss (default ${d.perDeviceEvalBatchSize})`],
  ['--gradient-accumulation-steps <n>', 'micro-batches per optimizer step (default: ceil(16 / per-device-train-batch-size), as ms-swift)'],
  ['--dataloader-drop-last <bool>', `drop the last incomplete micro-batch of an epoch (default ${d.dataloaderDropLast})`],
  ['--dataset-shuffle <bool>', `shuffle the training rows every epoch (default ${d.datasetShuffle})`],
  ['--split-dataset-ratio <r>', `hold out max(floor(r·rows), 1) rows for evaluation; 0 = no split (default ${d.splitDatasetRatio})`],
  ['--seed <n>', `seed of LoRA init and dropout (default ${d.seed})`],
  ['--data-seed <n>', `seed of the split and the shuffling (default ${d.dataSeed})`],
  ['--max-length <n>', 'longest token sequence (template included); see --truncation-strategy (default: the model\'s max_position_embeddings, as ms-swift — BERT 512, Qwen3-Embedding 32768)'],
  ['--truncation-strategy <s>', "rows with a longer text: 'delete' (skip the row, ms-swift's), 'right' (cut the end of the text) or 'left' (cut its start); the template's special tokens stay (default: 'delete' when --max-length is given, 'right' when the limit is the model's own)"],
  ['--gradient-checkpointing <bool>', `recompute each layer in backward instead of storing its activations: less memory, ~1.3× the time (default ${d.gradientCheckpointing})`],
  ['--gradient-cache-chunk-size <n>', 'gradient caching (GradCache, sentence-transformers\' CachedMultipleNegativesRankingLoss mini_batch_size): embed the micro-batch n texts at a time without a graph, then replay each chunk with its dropout and backpropagate the cached embedding gradient — the same gradients as one forward, activation memory of n texts, one more forward (default: off)'],
  ['--temperature <t>', 'InfoNCE temperature (default: INFONCE_TEMPERATURE, else 0.01 as ms-swift ≤3.10, which the tutorial needs; ≥3.11 uses 0.1)'],
  ['--use-batch <bool>', 'in-batch negatives: other rows\' positives and negatives (default: INFONCE_USE_BATCH, else true)'],
  ['--hard-negatives <n>', 'use exactly n negatives per row (truncate, or pad by drawing from the row) (default: INFONCE_HARD_NEGATIVES, else all)'],
  ['--mask-fake-negative <bool>', 'drop candidates whose cosine exceeds the positive\'s + margin (default: INFONCE_MASK_FAKE_NEGATIVE, else false)'],
  ['--fake-neg-margin <m>', 'margin of --mask-fake-negative (default: INFONCE_FAKE_NEG_MARGIN, else 0.1)'],
  ['--include-qq <bool>', 'add query–query similarities as negatives (default: INFONCE_INCLUDE_QQ, else false)'],
  ['--include-dd <bool>', 'add positive–document similarities as negatives (default: INFONCE_INCLUDE_DD, else false)'],
  ['--mrl-dims <dims...>', 'Matryoshka: sum the loss over these leading dimensions (e.g. 64 128 256 1024)'],
  ['--eval-steps <n>', 'evaluate every n optimizer steps (default: --save-steps)'],
  ['--save-steps <n>', `write checkpoint-<step> every n optimizer steps (default ${d.saveSteps})`],
  ['--logging-steps <n>', `log loss, lr and grad norm every n steps (default ${d.loggingSteps})`],
  ['--logging-first-step <bool>', `also log step 1 (default ${d.loggingFirstStep})`],
  ['--save-total-limit <n>', 'keep only the newest n checkpoints (and the best)'],
  ['--eval-k <ks...>', `cut-offs of the retrieval metrics NDCG@k, MRR@k, Recall@k (default ${d.evalK.join(' ')})`],
];

export interface TrainCliFlags {
  config?: string;
  onError: 'skip' | 'stop';
  tsvQuoting?: boolean;
  threads?: string;
  [key: string]: unknown;
}

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'Fine-tune an embedding model with InfoNCE over hard negatives (LoRA by default), as `swift sft --task_type embedding --loss_type infonce`: ' +
        'held-out eval (eval_loss, eval_margin, eval_mean_pos/neg, NDCG@10, MRR@10, Recall@k), checkpoints, resume, logging.jsonl and an HTML report.',
    );
  for (const [flags, help] of [...FLAGS, ...LAUNCH_FLAGS]) cmd.option(flags, help);
  cmd.addOption(new Option('--on-error <mode>', "a malformed data row: 'stop' (default) or 'skip' (counted and reported)").choices(['stop', 'skip']).default('stop'));
  cmd.option('--tsv-quoting', TSV_QUOTING_HELP);
  cmd.option('--threads <n>', 'libtorch threads (default: the cores available)');
  cmd.action(async (flags: TrainCliFlags) => {
    // --nproc-per-node N: this process only starts the workers (torchrun's role).
    const { launchPlan, launchWorkers } = await import('./launch.js');
    const plan = launchPlan(flags);
    if (plan) {
      process.exitCode = await launchWorkers(plan);
      return;
    }
    for (const key of LAUNCH_KEYS) delete flags[key];
    const { runTrainCommand } = await import('./train_run.js');
    await runTrainCommand(flags);
  });
}
