/**
 * bench/generate: greedy decoding tokens/s with and without the KV cache, on the tiny fixture
 * Qwen3 and on a Qwen3-0.6B-shaped model (random weights, float32), plus batched vs one-by-one
 * on the tiny model. "Without the cache" is a full forward over the whole sequence for every new
 * token (Generator `useCache: false`). Tokens/s counts generated tokens over the wall time of the
 * generate call (prefill included). Run: `npx tsc -p tsconfig.json && node dist/bench/generate.js
 * [--new-tokens 64] [--big-new-tokens 16] [--big-prompt 32] [--dtype float32|bfloat16] [--skip-big]`.
 */
import { join } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import * as torch from '../src/torch/index.js';
import { Qwen3Model, type Qwen3Config } from '../src/models/qwen3.js';
import { WeightStore } from '../src/models/weights.js';
import { Qwen3ForCausalLM } from '../src/models/qwen3_causal_lm.js';
import { ChatTemplate } from '../src/generate/chat_template.js';
import { Generator, type GenerationRequest } from '../src/generate/generator.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TINY = join(process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared'), 'fixtures/models/qwen3-tiny');
const argv = process.argv.slice(2);
const num = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};

const QWEN3_0_6B: Qwen3Config = {
  vocab_size: 151669, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16,
  num_key_value_heads: 8, head_dim: 128, rms_norm_eps: 1e-6, rope_theta: 1e6, hidden_act: 'silu', tie_word_embeddings: true,
};

/** Qwen3-0.6B's tensors with N(0, 0.02²) matrices and unit norms (seeded), float32. */
function randomQwen3(c: Qwen3Config, dtype: torch.DType): Qwen3Model {
  torch.manualSeed(0);
  const [h, i, d, nq, nkv] = [c.hidden_size, c.intermediate_size, c.head_dim!, c.num_attention_heads, c.num_key_value_heads];
  const tensors = new Map<string, torch.Tensor>();
  const normal = (name: string, shape: number[]) => tensors.set(name, torch.tidy(() => torch.randn(shape).mul(0.02).to(dtype)));
  const ones = (name: string, shape: number[]) => tensors.set(name, torch.ones(shape, { dtype }));
  normal('embed_tokens.weight', [c.vocab_size!, h]);
  ones('norm.weight', [h]);
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    const p = `layers.${l}`;
    ones(`${p}.input_layernorm.weight`, [h]);
    ones(`${p}.post_attention_layernorm.weight`, [h]);
    ones(`${p}.self_attn.q_norm.weight`, [d]);
    ones(`${p}.self_attn.k_norm.weight`, [d]);
    normal(`${p}.self_attn.q_proj.weight`, [nq * d, h]);
    normal(`${p}.self_attn.k_proj.weight`, [nkv * d, h]);
    normal(`${p}.self_attn.v_proj.weight`, [nkv * d, h]);
    normal(`${p}.self_attn.o_proj.weight`, [h, nq * d]);
    normal(`${p}.mlp.gate_proj.weight`, [i, h]);
    normal(`${p}.mlp.up_proj.weight`, [i, h]);
    normal(`${p}.mlp.down_proj.weight`, [h, i]);
  }
  torch.emptyCache();
  return new Qwen3Model(c, new WeightStore(tensors, 'random Qwen3-0.6B-shaped weights'));
}

interface Timing {
  tokens: number;
  seconds: number;
  /** CPU seconds of this process (all threads): steadier than wall time on a shared machine. */
  cpuSeconds: number;
}

function time(generator: Generator, requests: GenerationRequest[], useCache: boolean): Timing {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const results = generator.generateBatch(requests, { useCache });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  return { tokens: results.reduce((n, r) => n + r.tokenIds.length, 0), seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

const rate = (t: Timing) =>
  `${(t.tokens / t.seconds).toFixed(2)} tok/s wall (${t.tokens} tokens in ${t.seconds.toFixed(2)} s; ${t.cpuSeconds.toFixed(2)} CPU-s, ${(t.tokens / t.cpuSeconds).toFixed(2)} tok per CPU-s)`;

async function main(): Promise<void> {
  console.log(`threads ${torch.getNumThreads()}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (the machine is shared: rates move with it)`);
  const tiny = await Generator.load(TINY);
  const template = ChatTemplate.fromFolder(TINY);
  const prompt = tiny.tokenizer.encode(template.render([{ role: 'user', content: '水稻稻瘟病怎么防治？请详细说明。' }], { enableThinking: false }), { addSpecialTokens: false });
  const newTokens = num('--new-tokens', 64);
  const greedy = (promptIds: number[], maxTokens: number): GenerationRequest => ({ promptIds, maxTokens, temperature: 0, ignoreEos: true });
  time(tiny, [greedy(prompt, 4)], true); // warm-up
  console.log(`\ntiny fixture Qwen3 (2 layers, hidden 32, vocab 151669), prompt ${prompt.length} tokens, ${newTokens} new, greedy, batch 1`);
  console.log(`  with KV cache    ${rate(time(tiny, [greedy(prompt, newTokens)], true))}`);
  console.log(`  without (full)   ${rate(time(tiny, [greedy(prompt, newTokens)], false))}`);
  const prompts = Array.from({ length: 8 }, (_, k) => prompt.slice(0, prompt.length - k));
  const batched = time(tiny, prompts.map((p) => greedy(p, newTokens)), true);
  const oneByOne = prompts.map((p) => time(tiny, [greedy(p, newTokens)], true)).reduce((a, b) => ({ tokens: a.tokens + b.tokens, seconds: a.seconds + b.seconds, cpuSeconds: a.cpuSeconds + b.cpuSeconds }));
  console.log(`  8 prompts batched ${rate(batched)}; one by one ${rate(oneByOne)}`);
  tiny.dispose();

  if (argv.includes('--skip-big')) return;
  const bigNew = num('--big-new-tokens', 16);
  const bigPrompt = num('--big-prompt', 32);
  const dtypeArg = argv.indexOf('--dtype');
  const dtype: torch.DType = dtypeArg >= 0 && argv[dtypeArg + 1] === 'bfloat16' ? 'bfloat16' : 'float32';
  const lm = new Qwen3ForCausalLM(randomQwen3(QWEN3_0_6B, dtype));
  const big = new Generator(lm, tiny.tokenizer, { eosTokenIds: [151645], sampling: {} });
  const ids = Array.from({ length: bigPrompt }, (_, k) => (k * 7919) % 151000);
  time(big, [greedy(ids, 2)], true); // warm-up
  console.log(`\nQwen3-0.6B shapes (28 layers, hidden 1024, random weights, ${dtype}), prompt ${bigPrompt} tokens, ${bigNew} new, greedy, batch 1`);
  console.log(`  with KV cache    ${rate(time(big, [greedy(ids, bigNew)], true))}`);
  console.log(`  without (full)   ${rate(time(big, [greedy(ids, bigNew)], false))}`);
  big.dispose();
}

await main();
