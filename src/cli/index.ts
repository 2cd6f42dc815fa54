/** `embtune index`: build or update a RAG index (LanceDB folder) from a documents file. */
import type { Command } from 'commander';
import { ProgressBar } from './progress.js';
import { DEVICE_HELP, TSV_QUOTING_HELP, choice, modelFolder, parseDeviceFlag, parsePositiveInt } from './io.js';

interface IndexFlags {
  model: string;
  adapter?: string;
  docs: string;
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
      const embedder = await Embedder.load(await modelFolder(flags.model), { dtype: flags.dtype, device: flags.device, adapter: flags.adapter });
      try {
        const bar = new ProgressBar('indexing', 'docs');
        const report = await indexDocuments({
          db: flags.db,
          docs,
          embedder,
          identity: identityOf(embedder, flags.model, { adapter: flags.adapter, memoFolder: flags.db }),
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
              ` (${report.tokens} tokens embedded in ${report.seconds.toFixed(1)}s)${kept}`,
          );
        }
      } finally {
        embedder.dispose();
      }
    });
}
