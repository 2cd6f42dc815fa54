// The Qwen3 decoder layer reproduces transformers' hidden states on the tiny fixture model
// (fixtures/README.md §5: act_embeddings → act_layer0_output → act_layer1_output).
import { test } from 'node:test';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Tensor, arange } from '../../src/torch/index.js';
import { SafetensorsFile, loadSafetensors } from '../../src/formats/safetensors.js';
import { causalPaddingMask, decoderLayer, headDim, rotaryCosSin, scoped, type Qwen3Config } from '../../src/models/qwen3.js';
import { readFileSync } from 'node:fs';
import { assertClose, FIXTURES } from '../helpers.js';

const MODEL = join(FIXTURES, 'models/qwen3-tiny');

/** Real-token rows of a [B, L, H] tensor, as one [N, H] tensor. */
function realTokens(hidden: Tensor, mask: Tensor): Tensor {
  const flatMask = mask.reshape(-1).eq(1);
  const index = arange(flatMask.numel()).masked_fill(flatMask.logical_not(), -1);
  const keep = index.sort(0, true)[0].slice(0, 0, flatMask.sum().item());
  return hidden.reshape(-1, hidden.size(-1) as number).index_select(0, keep);
}

for (const padding of ['left', 'right'] as const) {
  test(`Qwen3 decoder layers reproduce transformers' hidden states (${padding} padding)`, () => {
    const config = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as Qwen3Config;
    const file = SafetensorsFile.open(join(MODEL, 'model.safetensors'));
    const weights = new Map(file.keys().filter((k) => k.startsWith('layers.')).map((k) => [k, torch.tidy(() => file.tensor(k).float())]));
    file.close();
    const golden = loadSafetensors(join(FIXTURES, `goldens/embed_base_${padding}.safetensors`));
    try {
      torch.tidy(() => {
        const lookup = (name: string) => {
          const t = weights.get(name);
          if (!t) throw new Error(`missing weight ${name}`);
          return t;
        };
        const mask = golden.get('attention_mask')!;
        const length = mask.size(1) as number;
        const [cos, sin] = rotaryCosSin(arange(length), headDim(config), config.rope_theta, 'float32');
        const additive = causalPaddingMask(mask, 'float32');
        let hidden = golden.get('act_embeddings')!;
        for (const layer of [0, 1]) {
          hidden = torch.noGrad(() => decoderLayer(scoped(lookup, `layers.${layer}`), config, hidden, cos, sin, additive));
          assertClose(realTokens(hidden, mask), realTokens(golden.get(`act_layer${layer}_output`)!, mask), { atol: 2e-4 }, `layer ${layer}`);
        }
      });
    } finally {
      torch.dispose([...weights.values(), ...golden.values()]);
    }
  });
}
