/**
 * The texts a merge is verified on: the held-out rows of the adapter's training run when its
 * args.json says which they were (the same `--split-dataset-ratio` / `--data-seed` split
 * `embtune train` made, or its `--val-dataset`), else built-in Chinese and English samples.
 * Queries are embedded with the query prompt, documents without (REFERENCE §5.1), so that both
 * code paths of the model are compared.
 */
import type { TextKind } from '../embed/index.js';
import { loadTrainExamples, splitExamples } from '../train/dataset.js';
import type { HeldOutSpec } from './run_info.js';

export interface SampleText {
  text: string;
  kind: TextKind;
}

export interface Samples {
  texts: SampleText[];
  /** Where they came from, for the printed line. */
  source: string;
}

/** Written for this check (no data set's text): agriculture and general questions and passages, in both languages. */
export const BUILT_IN_SAMPLES: readonly SampleText[] = [
  { kind: 'query', text: '水稻稻瘟病怎么防治？' },
  { kind: 'query', text: '小麦什么时候追肥最合适？' },
  { kind: 'query', text: '番茄叶片发黄是什么原因' },
  { kind: 'query', text: 'How do I keep aphids off young cabbage plants?' },
  { kind: 'query', text: 'what soil pH do blueberries need' },
  { kind: 'document', text: '稻瘟病防治要选用抗病品种，合理施用氮肥，发病初期可喷施三环唑或稻瘟灵。' },
  { kind: 'document', text: '冬小麦返青至拔节期追施氮肥，能促进分蘖成穗，提高产量。' },
  { kind: 'document', text: '番茄下部叶片发黄多与缺氮或缺镁有关，也可能是根系受损或浇水过多。' },
  { kind: 'document', text: 'Row covers and a spray of insecticidal soap keep aphid numbers down on brassica seedlings.' },
  { kind: 'document', text: 'Blueberries grow best in acidic soil with a pH between 4.5 and 5.5.' },
  { kind: 'document', text: '混合文本 mixed text：LoRA 合并后的模型应与原模型加适配器给出相同的向量。' },
];

/** The held-out rows of a training run as query and document texts (at most `limit` rows). */
export async function heldOutSamples(spec: HeldOutSpec, limit = 16): Promise<Samples> {
  let rows;
  if (spec.valDataset.length > 0) {
    rows = await loadTrainExamples(spec.valDataset, { onError: 'skip' });
  } else {
    rows = splitExamples(await loadTrainExamples(spec.dataset, { onError: 'skip' }), spec.splitDatasetRatio, spec.dataSeed).evalSet;
  }
  const picked = rows.slice(0, limit);
  const texts: SampleText[] = [
    ...picked.map((r) => ({ kind: 'query' as const, text: r.query })),
    ...picked.map((r) => ({ kind: 'document' as const, text: r.positive })),
  ];
  const files = (spec.valDataset.length > 0 ? spec.valDataset : spec.dataset).join(', ');
  return { texts, source: `${picked.length} held-out rows of ${files}` };
}

export function builtInSamples(): Samples {
  return { texts: [...BUILT_IN_SAMPLES], source: `${BUILT_IN_SAMPLES.length} built-in Chinese and English samples` };
}
