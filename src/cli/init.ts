/**
 * `embtune init`: a BERT or Qwen3 model initialised from scratch (src/models/init.ts), written as
 * a complete Hugging Face + sentence-transformers folder by the exporter (src/merge/export.ts) —
 * config.json, model.safetensors, tokenizer.json and the tokenizer files, modules.json,
 * 1_Pooling/config.json, config_sentence_transformers.json, sentence_bert_config.json, README.md.
 * The weights are first written beside the tokenizer into a staging folder and loaded back with
 * the model loader, so the folder written is what `embtune train`/`embed` will read.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { dispose } from '../torch/index.js';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { dumpsPython } from '../formats/python_json.js';
import { saveSafetensors } from '../formats/safetensors_write.js';
import { loadTokenizer, TOKENIZER_CONFIG, TOKENIZER_JSON, TOKENIZER_JSON_GZ, VOCAB_TXT } from '../tokenizers/index.js';
import { INIT_ARCHS, INIT_PRESETS, initShapeOf, initialConfig, initialWeights, type InitArch, type InitPreset } from '../models/init.js';
import { loadEncoder } from '../models/registry.js';
import { saveModelFolder } from '../merge/export.js';
import { UsageError, choice } from './io.js';

export interface InitFlags {
  arch: InitArch;
  config: string;
  vocab?: string;
  tokenizer?: string;
  output: string;
  seed: number;
}

export interface InitReport {
  folder: string;
  parameters: number;
  files: string[];
}

/** The Qwen3 tokenizer files copied from --tokenizer (tokenizer.json or its .gz is required). */
const QWEN_TOKENIZER_FILES = [TOKENIZER_JSON, TOKENIZER_JSON_GZ, TOKENIZER_CONFIG, 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'added_tokens.json'];

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

function writeJson(path: string, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  writeFileAtomic(path, (write) => write(bytes));
}

/** `tiny`/`small`, or a JSON file of config.json keys laid over the tiny preset. */
function readConfigChoice(arch: InitArch, value: string): { preset: InitPreset; overrides: Record<string, unknown> } {
  if ((INIT_PRESETS as readonly string[]).includes(value)) return { preset: value as InitPreset, overrides: {} };
  if (!isFile(value)) throw new UsageError(`--config must be ${INIT_PRESETS.join(', ')} or a config.json file; '${value}' is neither`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(value, 'utf8'));
  } catch (err) {
    throw new UsageError(`${value}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`${value}: expected a JSON object of config.json keys`);
  const overrides = { ...(parsed as Record<string, unknown>) };
  if (overrides.model_type !== undefined && overrides.model_type !== arch) throw new UsageError(`${value}: model_type '${String(overrides.model_type)}' does not match --arch ${arch}`);
  // The tokenizer decides these; a copied config's would not match the files written beside it.
  for (const key of ['torch_dtype', 'transformers_version']) delete overrides[key];
  return { preset: 'tiny', overrides };
}

/** Puts the tokenizer's source files into `staging`. */
function stageTokenizer(flags: InitFlags, staging: string, maxLength: number): void {
  if (flags.arch === 'bert') {
    if (!flags.vocab) throw new UsageError('--arch bert needs --vocab vocab.txt (a WordPiece vocabulary, e.g. the Chinese BERT vocab.txt)');
    if (!isFile(flags.vocab)) throw new UsageError(`--vocab ${flags.vocab}: no such file`);
    if (flags.tokenizer) throw new UsageError('--tokenizer is for --arch qwen3; a BERT model takes its vocabulary from --vocab');
    cpSync(flags.vocab, join(staging, VOCAB_TXT));
    // BertTokenizer's settings for a Chinese/uncased vocabulary (REFERENCE §9.2).
    const config = {
      tokenizer_class: 'BertTokenizer', do_lower_case: true, tokenize_chinese_chars: true, strip_accents: null, do_basic_tokenize: true, never_split: null,
      clean_up_tokenization_spaces: true, model_max_length: maxLength, padding_side: 'right', truncation_side: 'right',
      cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', unk_token: '[UNK]', mask_token: '[MASK]',
    };
    writeJson(join(staging, TOKENIZER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
    return;
  }
  if (flags.vocab) throw new UsageError('--vocab is for --arch bert; a Qwen3 model takes its tokenizer from --tokenizer DIR');
  if (!flags.tokenizer) throw new UsageError('--arch qwen3 needs --tokenizer DIR: a folder with a Qwen tokenizer.json (or tokenizer.json.gz) and tokenizer_config.json');
  if (!isFile(join(flags.tokenizer, TOKENIZER_JSON)) && !isFile(join(flags.tokenizer, TOKENIZER_JSON_GZ))) {
    throw new UsageError(`--tokenizer ${flags.tokenizer}: no ${TOKENIZER_JSON} or ${TOKENIZER_JSON_GZ} there`);
  }
  for (const name of QWEN_TOKENIZER_FILES) if (isFile(join(flags.tokenizer, name))) cpSync(join(flags.tokenizer, name), join(staging, name));
}

/** What the command does, callable without the command line; the summary goes to `log`. */
export async function runInit(flags: InitFlags, log: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Promise<InitReport> {
  const { preset, overrides } = readConfigChoice(flags.arch, flags.config);
  if (existsSync(join(flags.output, 'model.safetensors')) || existsSync(join(flags.output, 'config.json'))) {
    throw new UsageError(`--output ${flags.output} already holds a model; choose an empty folder`);
  }
  const staging = mkdtempSync(join(tmpdir(), 'embtune-init-'));
  try {
    const positions = Number(overrides.max_position_embeddings ?? (flags.arch === 'bert' ? 512 : 32768));
    stageTokenizer(flags, staging, positions);
    const tokenizer = await loadTokenizer(staging);
    const eos = flags.arch === 'qwen3' ? tokenizer.tokenId('<|endoftext|>') : undefined;
    let config;
    try {
      config = initialConfig(flags.arch, preset, { vocabSize: tokenizer.vocabSize, padTokenId: tokenizer.padTokenId, ...(eos !== undefined ? { eosTokenId: eos } : {}) }, overrides);
    } catch (err) {
      throw new UsageError(`${flags.config}: ${(err as Error).message}`);
    }
    writeJson(join(staging, 'config.json'), `${dumpsPython(config)}\n`);
    const weights = initialWeights(flags.arch, initShapeOf(config), flags.seed);
    const parameters = [...weights.values()].reduce((n, t) => n + t.numel(), 0);
    try {
      saveSafetensors(join(staging, 'model.safetensors'), weights);
    } finally {
      dispose([...weights.values()]);
    }
    const { encoder } = loadEncoder(staging);
    try {
      const card = modelCard(flags, preset, parameters);
      const saved = saveModelFolder(encoder, staging, flags.output, { modelCard: card });
      const shape = initShapeOf(config);
      log(`${flags.arch} ${flags.config} (hidden ${shape.hidden_size}, ${shape.num_hidden_layers} layers, vocab ${shape.vocab_size}): ${parameters.toLocaleString('en-US')} parameters, seed ${flags.seed} → ${flags.output}`);
      return { folder: flags.output, parameters, files: saved.files };
    } finally {
      encoder.dispose();
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function modelCard(flags: InitFlags, preset: InitPreset, parameters: number): string {
  const source = flags.arch === 'bert' ? `vocabulary ${flags.vocab}` : `tokenizer ${flags.tokenizer}`;
  return [
    '---',
    'library_name: sentence-transformers',
    'tags: [sentence-transformers, feature-extraction, embtune]',
    '---',
    '',
    `# ${flags.arch} initialised from scratch`,
    '',
    `An untrained ${flags.arch === 'bert' ? 'BERT encoder' : 'Qwen3 decoder'} made by \`embtune init --arch ${flags.arch} --config ${flags.config} --seed ${flags.seed}\`` +
      ` (${preset === 'tiny' && flags.config !== 'tiny' ? 'config file over the tiny preset' : `preset ${preset}`}, ${parameters.toLocaleString('en-US')} parameters, ${source}).`,
    "Weights follow transformers' `_init_weights`: Linear and Embedding normal(0, initializer_range), biases 0, norms 1.",
    'Train it before use, e.g. on weak pairs (`embtune pairs`) and then on supervised pairs (`embtune train`).',
    '',
  ].join('\n');
}

function seedFlag(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('--seed must be an integer ≥ 0.');
  return n;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('Make a BERT or Qwen3 embedding model initialised from scratch (transformers\' init), as a complete Hugging Face + sentence-transformers folder, to pretrain your own small encoder.')
    .requiredOption('--arch <arch>', "'bert' (encoder, mean pooling) or 'qwen3' (decoder, last-token pooling)", choice('--arch', INIT_ARCHS))
    .requiredOption('--config <tiny|small|file>', "size: 'tiny' (hidden 128, 2 layers), 'small' (hidden 512, 4 layers), or a JSON file of config.json keys over tiny's")
    .option('--vocab <file>', 'bert: the WordPiece vocab.txt (e.g. the Chinese BERT vocabulary)')
    .option('--tokenizer <dir>', 'qwen3: a folder with the Qwen tokenizer (tokenizer.json or .gz, tokenizer_config.json)')
    .requiredOption('--output <dir>', 'the new model folder (must not hold a model already)')
    .option('--seed <n>', 'seed of the weights', seedFlag, 0)
    .addHelpText('after', '\nExamples:\n  embtune init --arch bert --config tiny --vocab vocab.txt --output models/bert-tiny\n  embtune init --arch qwen3 --config small --tokenizer Qwen3-Embedding-0.6B/ --output models/qwen3-small --seed 1\n')
    .action(async (flags: InitFlags) => {
      await runInit(flags);
    });
}
