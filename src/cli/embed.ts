/** `embtune embed`: one `{"embedding": [...]}` line per input text (or a safetensors matrix). */
import type { Command } from 'commander';
import { rmSync } from 'node:fs';
import { extname } from 'node:path';
import { Embedder } from '../embed/embedder.js';
import { saveSafetensors } from '../formats/safetensors_write.js';
import { fromTypedArray } from '../torch/index.js';
import { ProgressBar } from './progress.js';
import { fileContentHashes, modelContentKey, sha256Hex } from '../embed/cache.js';
import * as distributed from '../torch/distributed.js';
import { mergeShards, parseShardSpec, recordFileOf, recordedInput, shardRange, writeEmbeddingsRecord, writeShard, type EmbedSettings, type ShardSpec, type VectorsSource } from '../embed/shards.js';
import { InvalidArgumentError } from 'commander';
import { DEVICE_HELP, TSV_QUOTING_HELP, UsageError, modelFolder, parseDeviceFlag, parsePositiveInt, readTexts, writeJsonl } from './io.js';

interface EmbedFlags {
  model?: string;
  adapter?: string;
  input?: string;
  output: string;
  shard?: ShardSpec;
  claimShards?: number;
  mergeShards?: string;
  textField: string;
  kind: 'query' | 'document';
  instruction?: string;
  dims?: number;
  paddingSide?: 'left' | 'right';
  dtype: 'float32' | 'bfloat16';
  device: string;
  batchSize: number;
  maxBatchTokens?: number;
  maxLength?: number;
  normalize?: boolean;
  tsvQuoting?: boolean;
}

export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description('Embed texts with a Qwen3-Embedding or BERT model: prompts, pooling and normalisation as the reference libraries do.')
    .option('--model <dir|org/name>', 'model folder or hub id (required unless --merge-shards)')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, as PEFT, ms-swift or embtune train write it), applied on top of --model without merging')
    .option('--input <file>', 'JSONL file (one object per line) or CSV/TSV with a header row, holding the text (required unless --merge-shards)')
    .requiredOption('--output <file>', 'where to write: .jsonl → one {"embedding": [...]} per input line, in order; .safetensors → one "embeddings" [N, D] float32 tensor (either way with OUTPUT.manifest.json beside it: model, weights and settings keys, input and its sha256, so that mine --corpus-embeddings and index --embeddings can use it); with --shard, a folder')
    .option('--shard <i/n>', 'embed only shard i of n (0-based; contiguous row ranges as datasets\' shard(n, i, contiguous=True)) into the folder --output: a Parquet file (row, embedding) and its JSON entry; run every i, on any machines, then --merge-shards', (v: string) => {
      try {
        return parseShardSpec(v);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    })
    .option('--claim-shards <n>', 'split the input into n shards (as --shard) and claim them one at a time, with the other workers of a torch.distributed group (torchrun\'s RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; local or remote), through its c10d store until none is left; each written as --shard writes it into the folder --output', parsePositiveInt('--claim-shards'))
    .option('--merge-shards <dir>', 'join the shards of a --shard folder into --output (.jsonl or .safetensors, what one embed of the whole input writes), after checking every shard is there, from the same model, input and settings, rows complete without overlap (mine --corpus-embeddings/--query-embeddings and index --embeddings also read the folder itself, without a merge)')
    .option('--text-field <name>', 'the field (JSONL) or column (CSV/TSV) holding the text', 'text')
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--kind <kind>', "'query' (gets the model's query prompt, Qwen3: Instruct: {task}\\nQuery:) or 'document' (no prompt)", choice('--kind', ['query', 'document']), 'document')
    .option('--instruction <text>', 'the task of the query prompt (Qwen3); default "Given a web search query, retrieve relevant passages that answer the query"')
    .option('--dims <n>', 'Matryoshka: keep the first n dimensions, then normalise', parsePositiveInt('--dims'))
    .option('--padding-side <side>', "'left' or 'right' (default: the model's, Qwen3 left, BERT right)", choice('--padding-side', ['left', 'right']))
    .option('--dtype <dtype>', "'float32' or 'bfloat16' weights and activations", choice('--dtype', ['float32', 'bfloat16']), 'float32')
    .option('--device <device>', DEVICE_HELP, parseDeviceFlag, 'cpu')
    .option('--batch-size <n>', 'texts per forward pass (texts are sorted by length first)', parsePositiveInt('--batch-size'), 32)
    .option('--max-batch-tokens <n>', 'padded tokens per forward pass at most: short texts travel in larger batches (default: no limit)', parsePositiveInt('--max-batch-tokens'))
    .option('--max-length <n>', 'truncate texts to n tokens, special tokens included (default: the model\'s)', parsePositiveInt('--max-length'))
    .option('--no-normalize', 'do not L2-normalise (default: what the model folder says; Qwen3 normalises)')
    .action(async (flags: EmbedFlags) => {
      const format = extname(flags.output).toLowerCase();
      if (flags.mergeShards !== undefined) {
        if (flags.shard) throw new UsageError('--merge-shards and --shard do not go together: embed the shards first, then merge them');
        if (format !== '.jsonl' && format !== '.safetensors') throw new UsageError(`--output must end in .jsonl or .safetensors, got '${flags.output}'`);
        // A folder that does not make one output (missing shard, other model) is a ShardError naming it: exit 1.
        const merged = await mergeShards(flags.mergeShards);
        writeEmbeddings(flags.output, format, merged.vectors, merged.manifest);
        console.error(`merged ${merged.manifest.numShards} shards (${merged.manifest.totalRows} rows, ${merged.manifest.dims} dims) → ${flags.output}`);
        return;
      }
      if (flags.model === undefined || flags.input === undefined) throw new UsageError('embed needs --model and --input (or --merge-shards DIR)');
      const sharded = flags.shard !== undefined || flags.claimShards !== undefined;
      if (flags.shard && flags.claimShards !== undefined) throw new UsageError('--shard i/n and --claim-shards n do not go together: a fixed shard, or shards claimed from the group');
      if (!sharded && format !== '.jsonl' && format !== '.safetensors') throw new UsageError(`--output must end in .jsonl or .safetensors, got '${flags.output}'`);
      const allTexts = await readTexts(flags.input, flags.textField, { tsvQuoting: flags.tsvQuoting });
      const folder = await modelFolder(flags.model);
      const embedder = await Embedder.load(folder, { dtype: flags.dtype, device: flags.device, adapter: flags.adapter });
      let joined = false;
      try {
        const embedRows = (start: number, end: number) => {
          const bar = new ProgressBar('embedding', 'texts');
          let tokens = 0;
          const vectors = embedder.embed(allTexts.slice(start, end), {
            kind: flags.kind,
            instruction: flags.instruction,
            dims: flags.dims,
            paddingSide: flags.paddingSide,
            batchSize: flags.batchSize,
            maxBatchTokens: flags.maxBatchTokens,
            maxLength: flags.maxLength,
            normalize: flags.normalize === false ? false : undefined,
            onProgress: (p) => {
              tokens = p.tokens;
              bar.update(p.done, p.total);
            },
          });
          return { vectors, finish: (what: string) => bar.finish(`embedded ${what} (${tokens} tokens, ${vectors[0]?.length ?? 0} dims) → ${flags.output}`) };
        };
        // Everything that changes a vector's bits is in the key, so the merge refuses shards made otherwise.
        const settings: EmbedSettings = { kind: flags.kind, instruction: flags.instruction ?? null, dims: flags.dims ?? null, paddingSide: flags.paddingSide ?? null, dtype: flags.dtype, batchSize: flags.batchSize, maxBatchTokens: flags.maxBatchTokens ?? null, maxLength: flags.maxLength ?? null, normalize: flags.normalize !== false };
        const common = {
          model: flags.model,
          // The key itself is a JSON of every file's sha256; its own sha256 keeps the entries short.
          modelKey: sha256Hex(modelContentKey(folder, { adapter: flags.adapter, settings })),
          // The weights alone (the file hashes are remembered from the line above): what mine and index compare.
          weightsKey: sha256Hex(modelContentKey(folder, { adapter: flags.adapter })),
          settings,
          input: recordedInput(flags.input),
          inputSha256: fileContentHashes([flags.input])[0]!,
          textField: flags.textField,
          tsvQuoting: flags.tsvQuoting ?? false,
          totalRows: allTexts.length,
        };
        if (!sharded) {
          const { vectors, finish } = embedRows(0, allTexts.length);
          writeEmbeddings(flags.output, format, vectors, { ...common, dims: vectors[0]?.length ?? 0 });
          finish(`${allTexts.length} texts`);
          return;
        }
        let next: () => ShardSpec | undefined;
        if (flags.shard) {
          const given = [flags.shard];
          next = () => given.shift();
        } else {
          // Dynamic claims: every worker of the group (torchrun's RANK, WORLD_SIZE, MASTER_ADDR,
          // MASTER_PORT) takes the next unclaimed shard from the store's counter until none is
          // left, so fast workers take more shards. The long timeout covers the final barrier,
          // which waits for the slowest worker's last shard.
          distributed.initProcessGroup({ backend: 'gloo', initMethod: 'env://', timeoutMs: CLAIM_TIMEOUT_MS });
          joined = true;
          const count = flags.claimShards!;
          next = () => {
            const index = distributed.storeAdd('embtune/embed/claimed-shards', 1) - 1;
            return index < count ? { index, count } : undefined;
          };
        }
        for (let spec = next(); spec !== undefined; spec = next()) {
          const [start, end] = shardRange(allTexts.length, spec.count, spec.index);
          const { vectors, finish } = embedRows(start, end);
          await writeShard(flags.output, { ...common, numShards: spec.count, index: spec.index, start, end }, vectors);
          finish(`shard ${spec.index}/${spec.count}: rows ${start}–${end - 1} of ${allTexts.length}${joined ? ` (rank ${distributed.getRank()})` : ''}`);
        }
        // Rank 0 hosts the store: it stays until every worker has finished its last claim.
        if (joined) distributed.barrier();
      } finally {
        embedder.dispose();
        if (joined) distributed.destroyProcessGroup();
      }
    });
}

/** How long a --claim-shards worker waits on the group (rendezvous, the final barrier): 6 hours. */
const CLAIM_TIMEOUT_MS = 6 * 60 * 60 * 1000;

/**
 * The output of `embtune embed` (and of --merge-shards, which must write the same bytes), then its
 * record. An old record goes first, so a run that fails midway never leaves one describing other vectors.
 */
function writeEmbeddings(output: string, format: string, vectors: readonly Float32Array[], source: VectorsSource): void {
  rmSync(recordFileOf(output), { force: true });
  if (format === '.jsonl') {
    writeJsonl(output, vectors.map((v) => ({ embedding: Array.from(v) })));
  } else {
    const dim = vectors[0]!.length;
    const matrix = new Float32Array(vectors.length * dim);
    vectors.forEach((v, i) => matrix.set(v, i * dim));
    const tensor = fromTypedArray(matrix, [vectors.length, dim]);
    saveSafetensors(output, { embeddings: tensor });
    tensor.dispose();
  }
  writeEmbeddingsRecord(output, source);
}

export function choice<T extends string>(flag: string, allowed: readonly T[]) {
  return (value: string): T => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`${flag} must be one of ${allowed.join(', ')}.`);
    return value as T;
  };
}
