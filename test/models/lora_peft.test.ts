// LoRA adapters in PEFT's format (REFERENCE §7; fixtures/README.md §7): the fixture adapter,
// written by PEFT 0.17.0 on Qwen3ForCausalLM, loads and reproduces the adapter-active goldens;
// what embtune saves is what PEFT writes (bytes, fields, names) and loads back identical; the
// namings PEFT, ms-swift and sentence-transformers produce are read; broken folders are errors
// that name the file and the tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import { BertModel } from '../../src/models/bert.js';
import { finishEmbedding, lastTokenPool } from '../../src/models/pooling.js';
import { LoraAdapter, pythonJsonFloat } from '../../src/models/lora/index.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const FIXTURE_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** Real-token rows of a [B, L, H] tensor, as one [N, H] tensor. */
function realTokens(hidden: Tensor, mask: Tensor): Tensor {
  const flat = mask.reshape(-1);
  const positions = torch.arange(flat.numel()).masked_fill(flat.eq(0), -1).sort(0, true)[0].slice(0, 0, flat.sum().item());
  return hidden.reshape(-1, hidden.size(-1) as number).index_select(0, positions);
}

/** Same shape, dtype and every value. */
function identical(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.join() === b.shape.join() && torch.tidy(() => !a.ne(b).any().item());
}

function withTemp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-lora-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A copy of the fixture adapter whose config and tensors are edited. */
function adapterVariant(dir: string, edit: { config?: (c: Record<string, unknown>) => void; tensors?: (t: Map<string, Tensor>) => Map<string, Tensor> }): string {
  const out = join(dir, 'adapter');
  cpSync(ADAPTER, out, { recursive: true });
  if (edit.config) {
    const config = JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    edit.config(config);
    writeFileSync(join(out, 'adapter_config.json'), JSON.stringify(config, null, 2));
  }
  if (edit.tensors) {
    const tensors = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
    try {
      unlinkSync(join(out, 'adapter_model.safetensors'));
      saveSafetensors(join(out, 'adapter_model.safetensors'), edit.tensors(tensors), { format: 'pt' });
    } finally {
      torch.dispose([...tensors.values()]);
    }
  }
  return out;
}

for (const padding of ['left', 'right'] as const) {
  test(`the fixture adapter written by PEFT reproduces the adapter-active goldens (${padding} padding)`, () => {
    const model = Qwen3Model.load(QWEN);
    const adapter = LoraAdapter.load(ADAPTER, model);
    const golden = loadSafetensors(join(FIXTURES, `goldens/embed_lora_${padding}.safetensors`));
    try {
      assert.equal(adapter.layers.size, 14);
      assert.equal(adapter.numParameters(), 4864, 'fixtures/README.md §7: 28 tensors, 4,864 params');
      for (const layer of adapter.layers.values()) assert.equal(layer.scaling, 2, 'α/r = 8/4');
      model.attachAdapter(adapter);
      torch.tidy(() =>
        torch.noGrad(() => {
          const [ids, mask] = [golden.get('input_ids')!, golden.get('attention_mask')!];
          const hidden = model.forward(ids, mask);
          assertClose(realTokens(hidden, mask), realTokens(golden.get('last_hidden_state')!, mask), { atol: 2e-4 }, 'last_hidden_state');
          const pooled = lastTokenPool(hidden, mask);
          assertClose(pooled, golden.get('pooled')!, { atol: 1e-5 }, 'pooled');
          assertClose(finishEmbedding(pooled, {}), golden.get('pooled_normalized')!, { atol: 1e-5 }, 'pooled_normalized');
          // The same model without the adapter gives the base embeddings, not these (§7: cosine down to 0.42).
          model.attachAdapter(undefined);
          const base = finishEmbedding(lastTokenPool(model.forward(ids, mask), mask), {});
          assert.ok(base.sub(golden.get('pooled_normalized')!).abs().max().item() > 0.1, 'the adapter changes the embeddings');
        }),
      );
    } finally {
      adapter.dispose();
      model.dispose();
      torch.dispose([...golden.values()]);
    }
  });
}

test("a new adapter seeded as the fixture was draws PEFT's very lora_A values (kaiming-uniform in module order), with B zero", () => {
  const model = Qwen3Model.load(QWEN);
  const file = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
  torch.manualSeed(20250518); // fixtures/README.md §7
  const adapter = LoraAdapter.create(model, { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: FIXTURE_TARGETS });
  try {
    const params = adapter.namedParameters();
    assert.deepEqual([...params.keys()].sort(), [...file.keys()].sort(), 'the same PEFT names');
    for (const [name, t] of params) {
      if (name.includes('lora_A')) assert.ok(identical(t, file.get(name)!), `${name}: bit-identical to PEFT's draw`);
      else assert.equal(t.abs().max().item(), 0, `${name} starts at zero`);
    }
  } finally {
    adapter.dispose();
    model.dispose();
    torch.dispose([...file.values()]);
  }
});

test('saving a loaded PEFT adapter writes the same bytes PEFT wrote (config and tensors)', () => {
  const model = Qwen3Model.load(QWEN);
  const adapter = LoraAdapter.load(ADAPTER, model);
  try {
    withTemp((dir) => {
      adapter.save(dir);
      for (const file of ['adapter_config.json', 'adapter_model.safetensors']) {
        assert.ok(readFileSync(join(dir, file)).equals(readFileSync(join(ADAPTER, file))), `${file} is byte-identical`);
      }
    });
  } finally {
    adapter.dispose();
    model.dispose();
  }
});

test('a new adapter saves with every PEFT field and PEFT names, and loads back with identical tensors', () => {
  const model = Qwen3Model.load(QWEN);
  torch.manualSeed(7);
  const adapter = LoraAdapter.create(model, { r: 4, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear' });
  try {
    // Trained values, so that B is not trivially zero.
    torch.noGrad(() => adapter.parameters().forEach((p) => p.normal_(0, 0.1)));
    withTemp((dir) => {
      adapter.save(dir, { baseModelNameOrPath: 'Qwen/Qwen3-Embedding-0.6B' });
      const written = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      const peft = JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(written).sort(), Object.keys(peft).sort(), 'the fields PEFT 0.17.0 writes');
      assert.equal(written.peft_type, 'LORA');
      assert.equal(written.task_type, null);
      assert.equal(written.r, 4);
      assert.equal(written.lora_alpha, 16);
      assert.equal(written.lora_dropout, 0.05);
      assert.equal(written.bias, 'none');
      assert.equal(written.use_rslora, false);
      assert.equal(written.init_lora_weights, true);
      assert.equal(written.fan_in_fan_out, false);
      assert.equal(written.modules_to_save, null);
      assert.equal(written.inference_mode, true);
      assert.equal(written.base_model_name_or_path, 'Qwen/Qwen3-Embedding-0.6B');
      assert.deepEqual(written.auto_mapping, peft.auto_mapping, 'Qwen3ForCausalLM, as ms-swift wraps it');
      assert.deepEqual(written.target_modules, FIXTURE_TARGETS, "'all-linear' is saved expanded, as PEFT does");
      const saved = loadSafetensors(join(dir, 'adapter_model.safetensors'));
      const peftNames = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
      try {
        assert.deepEqual([...saved.keys()].sort(), [...peftNames.keys()].sort(), "the fixture's PEFT names");
        const back = LoraAdapter.load(dir, model);
        try {
          assert.deepEqual([...back.namedParameters().keys()], [...adapter.namedParameters().keys()], 'same names, same order');
          for (const [name, t] of adapter.namedParameters()) assert.ok(identical(back.namedParameters().get(name)!, t), `${name} identical`);
          for (const layer of back.layers.values()) assert.equal(layer.scaling, 4);
          assert.equal([...back.layers.values()][0]!.dropout, 0.05);
        } finally {
          back.dispose();
        }
      } finally {
        torch.dispose([...saved.values(), ...peftNames.values()]);
      }
    });
  } finally {
    adapter.dispose();
    model.dispose();
  }
});

test("target_modules ['all-linear'] (ms-swift's list form) and 'ALL-LINEAR' select what 'all-linear' selects", () => {
  const model = Qwen3Model.load(QWEN);
  const adapters = [['all-linear'], 'ALL-LINEAR', 'all-linear'].map((target_modules) => LoraAdapter.create(model, { r: 2, target_modules }));
  try {
    for (const a of adapters) {
      assert.deepEqual(a.config.target_modules, FIXTURE_TARGETS);
      assert.equal(a.layers.size, 14);
    }
  } finally {
    adapters.forEach((a) => a.dispose());
    model.dispose();
  }
});

test('adapters named as PEFT on Qwen3Model (sentence-transformers) or with an adapter-name segment load the same, and save back under their own names', () => {
  const model = Qwen3Model.load(QWEN);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/embed_lora_left.safetensors'));
  try {
    withTemp((dir) => {
      for (const [label, rename] of [
        ['Qwen3Model naming', (n: string) => n.replace('base_model.model.model.', 'base_model.model.')],
        ['raw state-dict naming', (n: string) => n.replace(/\.lora_([AB])\.weight$/, '.lora_$1.default.weight')],
      ] as const) {
        const folder = adapterVariant(join(dir, label.replace(/\W/g, '_')), { tensors: (t) => new Map([...t].map(([k, v]) => [rename(k), v])) });
        const adapter = LoraAdapter.load(folder, model);
        try {
          model.attachAdapter(adapter);
          torch.tidy(() =>
            torch.noGrad(() => {
              const mask = golden.get('attention_mask')!;
              const embedding = finishEmbedding(lastTokenPool(model.forward(golden.get('input_ids')!, mask), mask), {});
              assertClose(embedding, golden.get('pooled_normalized')!, { atol: 1e-5 }, label);
            }),
          );
          if (label === 'Qwen3Model naming') {
            assert.equal(adapter.naming.modulePrefix, '');
            assert.equal(adapter.peftName('layers.0.self_attn.q_proj', 'A'), 'base_model.model.layers.0.self_attn.q_proj.lora_A.weight');
          }
        } finally {
          model.attachAdapter(undefined);
          adapter.dispose();
        }
      }
    });
  } finally {
    model.dispose();
    torch.dispose([...golden.values()]);
  }
});

test("BERT adapters: 'all-linear' takes query, key, value and every dense (pooler included, as PEFT), named as PEFT on BertModel", () => {
  const model = BertModel.load(BERT);
  const adapter = LoraAdapter.create(model, { r: 2 });
  try {
    assert.deepEqual(adapter.config.target_modules, ['query', 'key', 'value', 'dense']);
    assert.equal(adapter.layers.size, 2 * 6 + 1);
    assert.ok(adapter.layers.has('pooler.dense'));
    assert.ok(adapter.namedParameters().has('base_model.model.encoder.layer.1.attention.output.dense.lora_B.weight'));
    withTemp((dir) => {
      adapter.save(dir);
      const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
      assert.deepEqual(config.auto_mapping, { base_model_class: 'BertModel', parent_library: 'transformers.models.bert.modeling_bert' });
      const back = LoraAdapter.load(dir, model);
      try {
        assert.equal(back.naming.modulePrefix, '');
        assert.deepEqual([...back.namedParameters().keys()], [...adapter.namedParameters().keys()]);
      } finally {
        back.dispose();
      }
    });
  } finally {
    adapter.dispose();
    model.dispose();
  }
});

test('Python float repr, as json.dumps writes floats into adapter_config.json', () => {
  const cases: [number, string][] = [[0, '0.0'], [0.05, '0.05'], [32, '32.0'], [1e-6, '1e-06'], [1e6, '1000000.0'], [1.5e16, '1.5e+16'], [0.0001, '0.0001'], [-2.5, '-2.5'], [123.456, '123.456']];
  for (const [x, repr] of cases) assert.equal(pythonJsonFloat(x), repr, String(x));
});

// ------------------------------------------------------------------------------------ errors

function assertLoadError(folder: string, pattern: RegExp, what: string): void {
  const model = Qwen3Model.load(QWEN);
  try {
    assert.throws(() => LoraAdapter.load(folder, model), (err: Error) => {
      assert.match(err.message, pattern, what);
      return true;
    });
  } finally {
    model.dispose();
  }
}

test('a folder without adapter_config.json or without weights is an error naming the folder and the file', () => {
  withTemp((dir) => {
    assertLoadError(dir, /no adapter_config\.json/, 'missing config');
    const noWeights = adapterVariant(dir, {});
    unlinkSync(join(noWeights, 'adapter_model.safetensors'));
    assertLoadError(noWeights, /adapter.*no adapter_model\.safetensors/, 'missing weights');
    writeFileSync(join(noWeights, 'adapter_model.bin'), 'pickle');
    assertLoadError(noWeights, /adapter_model\.bin.*does not unpickle/, 'pickle only');
  });
});

test('a tensor for a module the model lacks is an error naming the file, the tensor and the module', () => {
  withTemp((dir) => {
    const folder = adapterVariant(dir, { tensors: (t) => new Map([...t].map(([k, v]) => [k.replace('layers.1.', 'layers.7.'), v])) });
    assertLoadError(folder, /adapter_model\.safetensors: tensor 'base_model\.model\.model\.layers\.7\.[a-z_.]+lora_[AB]\.weight' is for module 'model\.layers\.7\./, 'unknown layer');
  });
});

test('a shape that does not match r is an error naming the file, the tensor, and r from the config', () => {
  withTemp((dir) => {
    const folder = adapterVariant(dir, { config: (c) => (c.r = 8) });
    assertLoadError(folder, /adapter_model\.safetensors: tensor 'base_model\.model\.model\.layers\.0\.[a-z_.]+\.lora_A\.weight' has shape \[4, (32|64)\], expected \[8, (32|64)\] \(r = 8 from adapter_config\.json/, 'r mismatch');
  });
});

test('a truncated adapter file is an error naming the file', () => {
  withTemp((dir) => {
    const folder = adapterVariant(dir, {});
    const bytes = readFileSync(join(ADAPTER, 'adapter_model.safetensors'));
    writeFileSync(join(folder, 'adapter_model.safetensors'), bytes.subarray(0, bytes.length - 100));
    assertLoadError(folder, /adapter_model\.safetensors.*cannot read the adapter weights/, 'truncated');
  });
});

test('a tensor of a non-float dtype is an error naming the file and the tensor', () => {
  withTemp((dir) => {
    const folder = adapterVariant(dir, {
      tensors: (t) => new Map([...t].map(([k, v]) => [k, k.endsWith('layers.0.self_attn.q_proj.lora_B.weight') ? v.to('int32') : v])),
    });
    assertLoadError(folder, /adapter_model\.safetensors: tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight' has dtype I32/, 'int tensor');
  });
});

test('loadWeights copies a saved adapter into the same tensors (resuming), and refuses a different adapter', () => {
  const model = Qwen3Model.load(QWEN);
  torch.manualSeed(21);
  const adapter = LoraAdapter.create(model, { r: 4, lora_alpha: 8, target_modules: FIXTURE_TARGETS });
  const other = LoraAdapter.create(model, { r: 4, target_modules: ['q_proj'] });
  try {
    const tensorsBefore = adapter.parameters();
    adapter.loadWeights(ADAPTER);
    const file = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
    try {
      for (const [name, t] of adapter.namedParameters()) assert.ok(identical(t, file.get(name)!), `${name} loaded`);
    } finally {
      torch.dispose([...file.values()]);
    }
    assert.ok(adapter.parameters().every((t, i) => t === tensorsBefore[i]), 'the same tensor objects (the optimizer keeps its references)');
    assert.throws(() => other.loadWeights(ADAPTER), /adapter_model\.safetensors: tensor '.*' is not one of this adapter's/);
  } finally {
    adapter.dispose();
    other.dispose();
    model.dispose();
  }
});

test('a tensor the config does not target, or a target without tensors, is an error', () => {
  withTemp((dir) => {
    const narrow = adapterVariant(join(dir, 'narrow'), { config: (c) => (c.target_modules = ['q_proj', 'k_proj']) });
    assertLoadError(narrow, /tensor '.*(v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_[AB]\.weight' is for module .* which adapter_config\.json's target_modules .* does not select/, 'untargeted tensor');
    const missing = adapterVariant(join(dir, 'missing'), { tensors: (t) => new Map([...t].filter(([k]) => !k.includes('layers.1.mlp.up_proj.lora_B'))) });
    assertLoadError(missing, /no lora_B for module 'layers\.1\.mlp\.up_proj'/, 'missing tensor');
  });
});

test('unsupported PEFT features are refused with the field named', () => {
  withTemp((dir) => {
    assertLoadError(adapterVariant(join(dir, 'dora'), { config: (c) => (c.use_dora = true) }), /adapter_config\.json: 'use_dora' is true; it must be false/, 'DoRA');
    assertLoadError(adapterVariant(join(dir, 'ia3'), { config: (c) => (c.peft_type = 'IA3') }), /'peft_type' is "IA3"/, 'IA3');
    assertLoadError(adapterVariant(join(dir, 'save'), { config: (c) => (c.modules_to_save = ['lm_head']) }), /'modules_to_save'/, 'modules_to_save');
    assertLoadError(adapterVariant(join(dir, 'pissa'), { config: (c) => (c.init_lora_weights = 'pissa') }), /init_lora_weights "pissa" is not supported/, 'PiSSA');
  });
});

test('creating an adapter for a module name the model does not have is an error listing what it has', () => {
  const model = Qwen3Model.load(QWEN);
  try {
    assert.throws(() => LoraAdapter.create(model, { target_modules: ['q_proj', 'qkv_proj'] }), /'qkv_proj' match no Linear layer of the model \(it has q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj\)/);
    assert.throws(() => LoraAdapter.create(model, { r: 0 }), /r must be a positive integer/);
    const bert = BertModel.load(BERT);
    const adapter = LoraAdapter.create(model, { r: 2 });
    try {
      assert.throws(() => bert.attachAdapter(adapter), /adapts 'layers\.0\.self_attn\.q_proj', which the model .*bert-tiny does not have/);
    } finally {
      adapter.dispose();
      bert.dispose();
    }
  } finally {
    model.dispose();
  }
});
