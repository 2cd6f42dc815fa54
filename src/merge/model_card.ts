/**
 * README.md of an exported model: the Hugging Face model card front matter (library, base model,
 * pipeline tag) and what a reader needs to trust and use the model — the base, how it was made
 * (adapter merge or fusion), the training data and command from the run's args.json, the eval
 * metrics (`embtune eval`'s metrics.json, else the run's last eval record), the parity line, and
 * how to load it in sentence-transformers and TEI.
 */
import type { RunInfo } from './run_info.js';

export interface ModelCardInput {
  /** The base model as the user named it (folder or hub id). */
  base: string;
  /** How the weights were made, one line (e.g. "LoRA adapter output/v0-…/checkpoint-100 merged"). */
  method: string;
  run?: RunInfo;
  /** The `parity: …` line of the check. */
  parity?: string;
  /** The query prompt, shown in the usage example. */
  queryPrompt?: string;
}

/** `embtune train` flags for the args.json keys that define a run (camelCase → --kebab-case). */
const COMMAND_KEYS = [
  'model', 'dataset', 'trainType', 'lossType', 'loraRank', 'loraAlpha', 'loraDropout', 'learningRate', 'numTrainEpochs', 'maxSteps',
  'perDeviceTrainBatchSize', 'gradientAccumulationSteps', 'splitDatasetRatio', 'dataSeed', 'seed', 'temperature', 'maskFakeNegative',
];

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function shellWord(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/** The `embtune train` command line that reproduces the run's config (the defaults it left out included). */
export function trainingCommand(args: Record<string, unknown>): string {
  const parts = ['embtune train'];
  for (const key of COMMAND_KEYS) {
    const v = args[key];
    if (v === undefined || v === null || (key === 'maxSteps' && v === -1)) continue;
    const values = Array.isArray(v) ? v.map(String) : [String(v)];
    if (values.length === 0) continue;
    parts.push(`--${kebab(key)} ${values.map(shellWord).join(' ')}`);
  }
  return parts.join(' \\\n  ');
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

function metricsSection(run: RunInfo | undefined): string[] {
  if (run?.metrics && Object.keys(run.metrics).length > 0) {
    const labels = Object.keys(run.metrics);
    const keys = [...new Set(labels.flatMap((l) => Object.keys(run.metrics![l]!)))].filter((k) => /ndcg@10|mrr@10|recall@10|map@100|accuracy@1$/.test(k));
    const shown = keys.length > 0 ? keys : [...new Set(labels.flatMap((l) => Object.keys(run.metrics![l]!)))].slice(0, 6);
    return [
      '## Evaluation',
      '',
      `From \`embtune eval\` (${run.metricsFile}):`,
      '',
      `| model | ${shown.join(' | ')} |`,
      `|---|${shown.map(() => '---').join('|')}|`,
      ...labels.map((l) => `| ${l} | ${shown.map((k) => (run.metrics![l]![k] === undefined ? '' : fmt(run.metrics![l]![k]!))).join(' | ')} |`),
      '',
    ];
  }
  if (run?.lastEval) {
    const entries = Object.entries(run.lastEval).filter(([k, v]) => k.startsWith('eval_') && typeof v === 'number') as [string, number][];
    return ['## Evaluation', '', `Held-out metrics at training step ${run.lastEval.step}:`, '', ...entries.map(([k, v]) => `- ${k}: ${fmt(v)}`), ''];
  }
  return [];
}

export function modelCard(input: ModelCardInput): string {
  const run = input.run;
  const args = run?.args;
  const data = Array.isArray(args?.dataset) ? (args!.dataset as unknown[]).map(String) : [];
  const lines = [
    '---',
    'library_name: sentence-transformers',
    `base_model: ${input.base}`,
    'pipeline_tag: sentence-similarity',
    'tags:',
    '- sentence-transformers',
    '- feature-extraction',
    '- embtune',
    '---',
    '',
    `# Embedding model fine-tuned from ${input.base}`,
    '',
    `- Base model: \`${input.base}\``,
    `- Made by: ${input.method}`,
    ...(data.length > 0 ? [`- Training data: ${data.map((d) => `\`${d}\``).join(', ')}`] : []),
    ...(run?.step !== undefined ? [`- Checkpoint: step ${run.step}`] : []),
    ...(input.parity ? [`- Check: ${input.parity}`] : []),
    '',
    ...(args ? ['## Training', '', '```sh', trainingCommand(args), '```', ''] : []),
    ...metricsSection(run),
    '## Usage',
    '',
    '```python',
    'from sentence_transformers import SentenceTransformer',
    'model = SentenceTransformer("path/to/this/folder")',
    input.queryPrompt !== undefined && input.queryPrompt !== '' ? 'q = model.encode(["your question"], prompt_name="query")' : 'q = model.encode(["your question"])',
    'd = model.encode(["a passage"])',
    'print(model.similarity(q, d))',
    '```',
    '',
    'Text Embeddings Inference: `text-embeddings-inference --model-id path/to/this/folder`. embtune: `embtune embed --model path/to/this/folder …`.',
    '',
  ];
  return lines.join('\n');
}
