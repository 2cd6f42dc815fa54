/** `embtune index`: build or update a RAG index (LanceDB folder) from a documents file. */
import type { Command } from 'commander';
import { ProgressBar } from './progress.js';
import { DEVICE_HELP, TSV_QUOTING_HELP, UsageError, choice, modelFolder, parseDeviceFlag, parsePositiveInt } from './io.js';
// Types only: the store pulls in LanceDB, loaded when `index` runs, not at every command's start.
import type { IndexIdentity } from '../rag/store.js';
import { ShardError, checkVectorsInput, describeVectorsModel, recordFileOf, textReading, type VectorsSource } from '../embed/shards.js';

interface IndexFlags {
  model: string;
  adapter?: string;
  docs: string;
  embeddings?: string;
  db: string;
  idField: string;
  textField: string;
  metadataFields?: string[];
  tsvQuoting?: boolean;
  prune?: boolean;
  ftsTokenizer: 'bigram' | 'ngram';
  dtype: 'float32' | 'bfloat16';
  device: string;
  batchSize: number;
  maxBatchTokens?: number;
  json?: boolean;
}

export function registerIndex(program: Command): void {
  program
    .command('index')
    .description(
      'Build or update a RAG index: embed documents (as documents, no instruction) into an on-disk LanceDB table with a BM25 full-text index. ' +
        'Incremental: new ids are added, documents whose text or metadata changed are embedded again, unchanged ones are kept, --prune deletes ids no longer in --docs; an id is never stored twice.',
    )
    .requiredOption('--model <dir|org/name>', 'embedding model folder or hub id; the index records it and refuses another')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder applied on top of --model without merging (recorded in the index too)')
    .requiredOption('--docs <file>', 'documents: JSONL, JSON, CSV/TSV with a header row, or Parquet')
    .option(
      '--embeddings <dir|file>',
      'precomputed document vectors instead of embedding --docs: a shard folder of embed --shard/--claim-shards (read in place, checked as --merge-shards checks it), or an embed output (.jsonl/.safetensors) with its OUTPUT.manifest.json. ' +
        'Row k is document k of --docs, which must be the very file embedded (same sha256, --text-field and row count), embedded as documents by the weights of --model/--adapter; anything else is refused. Incremental as without it',
    )
    .requiredOption('--db <dir>', 'the index folder (created if missing)')
    .option('--id-field <name>', 'the field holding each document id (a string or integer, unique)', 'id')
    .option('--text-field <name>', 'the field holding the text', 'text')
    .option('--metadata-fields <names>', 'comma-separated fields stored beside each document, returned with hits and usable in search --filter', (v) => v.split(',').map((s) => s.trim()).filter((s) => s !== ''))
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--prune', 'delete documents whose id is no longer in --docs')
    .option('--fts-tokenizer <name>', "full-text terms of a new index: 'bigram' (CJK character bigrams + whole words, fit for Chinese) or 'ngram' (LanceDB's character bigrams of the raw text)", choice('--fts-tokenizer', ['bigram', 'ngram']), 'bigram')
    .option('--dtype <dtype>', "'float32' or 'bfloat16' weights and activations", choice('--dtype', ['float32', 'bfloat16']), 'float32')
    .option('--device <device>', DEVICE_HELP, parseDeviceFlag, 'cpu')
    .option('--batch-size <n>', 'texts per forward pass', parsePositiveInt('--batch-size'), 32)
    .option('--max-batch-tokens <n>', 'padded tokens per forward pass at most (default: no limit)', parsePositiveInt('--max-batch-tokens'))
    .option('--json', 'print the report as one JSON object')
    .action(async (flags: IndexFlags) => {
      const { readDocuments } = await import('../rag/documents.js');
      const { indexDocuments, identityOf } = await import('../rag/indexer.js');
      const { Embedder } = await import('../embed/embedder.js');
      const docs = await readDocuments(flags.docs, { idField: flags.idField, textField: flags.textField, metadataFields: flags.metadataFields, tsvQuoting: flags.tsvQuoting });
      // The vectors and their input are checked before the model loads: a wrong folder fails fast.
      const precomputed = flags.embeddings === undefined ? undefined : await precomputedVectors(flags, docs.length);
      const embedder = await Embedder.load(await modelFolder(flags.model), { dtype: flags.dtype, device: flags.device, adapter: flags.adapter });
      try {
        const bar = new ProgressBar('indexing', 'docs');
        // With --embeddings the weights are hashed without the index's memo: a refused run leaves no --db folder behind.
        const identity = identityOf(embedder, flags.model, { adapter: flags.adapter, memoFolder: precomputed ? undefined : flags.db });
        if (precomputed) await checkVectorsModel(precomputed, identity);
        const report = await indexDocuments({
          db: flags.db,
          docs,
          // The model is still loaded with --embeddings: its identity is what the index records.
          embedder: precomputed ? undefined : embedder,
          vectors: precomputed?.vectors,
          identity,
          metadataFields: flags.metadataFields,
          ftsTokenizer: flags.ftsTokenizer,
          prune: flags.prune,
          batchSize: flags.batchSize,
          maxBatchTokens: flags.maxBatchTokens,
          onProgress: (p) => bar.update(p.done, p.total),
        });
        if (flags.json) {
          console.log(JSON.stringify({ db: flags.db, documents: docs.length, ...report }));
        } else {
          const kept = report.notInDocs > 0 ? `; ${report.notInDocs} stored ids are not in --docs (kept; --prune deletes them)` : '';
          console.log(
            `${flags.db}: ${report.rows} rows — ${report.added} added, ${report.updated} updated, ${report.unchanged} unchanged, ${report.deleted} deleted` +
              (precomputed ? ` (vectors from ${precomputed.path}, ${report.seconds.toFixed(1)}s)` : ` (${report.tokens} tokens embedded in ${report.seconds.toFixed(1)}s)`) +
              kept,
          );
        }
      } finally {
        embedder.dispose();
      }
    });
}

/**
 * The --embeddings vectors, once they are known to be --docs' rows: row k of the vectors is row k
 * of the input they were embedded from, so --docs must be that file (its sha256), read the same
 * way (--text-field, --tsv-quoting), with as many documents as the vectors have rows.
 */
async function precomputedVectors(flags: IndexFlags, documents: number): Promise<{ path: string; source: VectorsSource; vectors: Float32Array[] }> {
  const { openRecordedVectors } = await import('./vectors.js');
  const path = flags.embeddings!;
  const recorded = await openRecordedVectors(path, '--embeddings');
  if (recorded === undefined) {
    throw new UsageError(`--embeddings ${path} records no model or input (no ${recordFileOf(path)}, which embtune embed writes beside its output): give a shard folder or an embed output with its record`);
  }
  const { source } = recorded;
  checkVectorsInput(source, `--embeddings ${path}`, flags.docs);
  const reading = textReading(source);
  if (reading.textField !== flags.textField || reading.tsvQuoting !== (flags.tsvQuoting ?? false)) {
    const how = (field: string, quoting: boolean) => `--text-field ${field}${quoting ? ' --tsv-quoting' : ''}`;
    throw new UsageError(`--embeddings ${path} embedded ${how(reading.textField, reading.tsvQuoting)} of ${source.input}, this run reads ${how(flags.textField, flags.tsvQuoting ?? false)}: pass the same`);
  }
  if (documents !== source.totalRows) throw new ShardError(`--embeddings ${path} has ${source.totalRows} rows, --docs ${flags.docs} ${documents} documents`);
  return { path, source, vectors: await recorded.read() };
}

/**
 * The vectors must be what this index would compute: the same weights (model and adapter, by
 * content: the index's fingerprint is the vectors' weights key), embedded as documents, of the
 * same width and normalisation.
 */
async function checkVectorsModel(recorded: { path: string; source: VectorsSource }, identity: IndexIdentity): Promise<void> {
  const { IndexError, describeIdentity } = await import('../rag/store.js');
  const { source, path } = recorded;
  const index = describeIdentity(identity);
  const vectors = describeVectorsModel(source);
  const refuse = (why: string) => {
    throw new IndexError(`--embeddings ${path}: ${why}`);
  };
  if (source.weightsKey === undefined) refuse(`the vectors of ${vectors} record no weights key (embedded by an older embtune): embed them again`);
  if (source.weightsKey !== identity.fingerprint) {
    refuse(`the vectors were embedded by ${vectors}, this index uses ${index}: vectors of another model cannot be searched with this one; pass the same --model/--adapter or embed again`);
  }
  const settings = source.settings;
  if (settings && settings.kind !== 'document') refuse(`the vectors were embedded with --kind ${settings.kind}; an index holds documents (embed with --kind document)`);
  if (source.dims !== identity.dim) refuse(`the vectors have ${source.dims} dimensions, ${index} makes ${identity.dim} (embed without --dims)`);
  if (settings && settings.normalize !== identity.normalize) refuse(`the vectors were embedded ${settings.normalize ? 'normalised' : 'without normalising'}, ${index} ${identity.normalize ? 'normalises' : 'does not'}`);
}
