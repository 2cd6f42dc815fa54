// A BERT cross-encoder model folder for the tests: bert-tiny with a one-label classifier.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { manualSeed, randn, type Tensor } from '../../src/torch/index.js';
import { FIXTURES } from '../helpers.js';

const BERT = join(FIXTURES, 'models/bert-tiny');

/** bert-tiny as a cross-encoder: its weights under `bert.`, a seeded random one-label classifier. */
export function crossEncoderFolder(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-cross-encoder-'));
  const config = JSON.parse(readFileSync(join(BERT, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, architectures: ['BertForSequenceClassification'], id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } }));
  for (const file of ['vocab.txt', 'tokenizer_config.json']) copyFileSync(join(BERT, file), join(dir, file));
  const tensors = new Map<string, Tensor>([...loadSafetensors(join(BERT, 'model.safetensors'))].map(([name, t]) => [`bert.${name}`, t]));
  manualSeed(7);
  tensors.set('classifier.weight', randn([1, config.hidden_size]));
  tensors.set('classifier.bias', randn([1]));
  saveSafetensors(join(dir, 'model.safetensors'), tensors);
  for (const t of tensors.values()) t.dispose();
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
