/**
 * bench/engine: embtune's engine beside PyTorch on the same machine, in the same run.
 * float32 GEMM (1024³ and 2048×1024×4096), attention as a served qwen3-tiny reranker batch runs it
 * (no gradients: the inference kernel), and one Qwen3-0.6B-shaped decoder layer (hidden 1024,
 * 16 heads of 128, 8 KV heads, MLP 3072; batch 8 × 128 tokens), forward and forward+backward.
 * Prints both times and the ratio PyTorch time / embtune time (≥ 1 means embtune is faster).
 * The machines are noisy, so the two sides alternate for several rounds and each side's time
 * is its best round median.
 *
 *   npm run bench:engine -- [--threads N] [--rounds 4] [--python /usr/bin/python3] [--no-baseline]
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { Tensor, arange, noGrad, tidy } from '../src/torch/index.js';
import { causalPaddingMask, decoderLayer, rotaryCosSin, type Qwen3Config } from '../src/models/qwen3.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const threads = Number(flag('--threads', String(torch.defaultNumThreads())));
const python = flag('--python', '/usr/bin/python3');
const rounds = Number(flag('--rounds', '4'));
const withBaseline = !argv.includes('--no-baseline');
const reps = { gemm_small: 20, gemm_large: 8, attention: 50, layer: 5 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Median seconds of `fn`; everything it makes (its result too) is freed inside the timing, as Python's refcounting would. */
function timed(fn: () => unknown, n: number, warmup = 2): number {
  const run = () => tidy(() => void fn());
  for (let i = 0; i < warmup; i++) run();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  return median(samples);
}

const config: Qwen3Config = { hidden_size: 1024, intermediate_size: 3072, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, rms_norm_eps: 1e-6, rope_theta: 1e6 };
const [B, L, H, NQ, NKV, D, I] = [8, 128, 1024, 16, 8, 128, 3072];

function makeLayer(requiresGrad: boolean): Map<string, Tensor> {
  const param = (shape: number[], scale: number, offset = 0) => torch.keep(torch.randn(shape).mul(scale).add(offset).requires_grad_(requiresGrad));
  return new Map([
    ['self_attn.q_proj.weight', param([NQ * D, H], H ** -0.5)],
    ['self_attn.k_proj.weight', param([NKV * D, H], H ** -0.5)],
    ['self_attn.v_proj.weight', param([NKV * D, H], H ** -0.5)],
    ['self_attn.o_proj.weight', param([H, NQ * D], (NQ * D) ** -0.5)],
    ['self_attn.q_norm.weight', param([D], 0.1, 1)],
    ['self_attn.k_norm.weight', param([D], 0.1, 1)],
    ['input_layernorm.weight', param([H], 0, 1)],
    ['post_attention_layernorm.weight', param([H], 0, 1)],
    ['mlp.gate_proj.weight', param([I, H], H ** -0.5)],
    ['mlp.up_proj.weight', param([I, H], H ** -0.5)],
    ['mlp.down_proj.weight', param([H, I], I ** -0.5)],
  ]);
}

function runEmbtune(): Record<string, number> {
  torch.manualSeed(0);
  const results: Record<string, number> = {};
  const [a, b] = [torch.keep(torch.randn([1024, 1024])), torch.keep(torch.randn([1024, 1024]))];
  results['gemm 1024x1024x1024'] = timed(() => a.matmul(b), reps.gemm_small);
  const [c, d] = [torch.keep(torch.randn([2048, 1024])), torch.keep(torch.randn([1024, 4096]))];
  results['gemm 2048x1024x4096'] = timed(() => c.matmul(d), reps.gemm_large);

  // Attention as a served reranker batch of qwen3-tiny runs it (heads of 16: the inference kernel).
  const [q, k, v] = [torch.keep(torch.randn([24, 4, 30, 16])), torch.keep(torch.randn([24, 2, 92, 16])), torch.keep(torch.randn([24, 2, 92, 16]))];
  const attnMask = torch.keep(torch.randn([24, 1, 30, 92]));
  results['attention 24x4/2x30x92x16 (no grad)'] = timed(
    () => noGrad(() => torch.F.scaled_dot_product_attention(q, k, v, { attnMask, scale: 0.25, enableGqa: true }).transpose(1, 2).contiguous()),
    reps.attention,
  );
  torch.dispose([q, k, v, attnMask]);

  const hidden = torch.keep(torch.randn([B, L, H]));
  const [cos, sin] = rotaryCosSin(arange(L), D, config.rope_theta, 'float32').map((t) => torch.keep(t));
  const mask = torch.keep(causalPaddingMask(torch.ones([B, L], { dtype: 'int64' }), 'float32').slice(0, 0, 1));
  const frozen = makeLayer(false);
  const lookupIn = (m: Map<string, Tensor>) => (name: string) => m.get(name)!;
  results['qwen3 layer forward'] = timed(() => noGrad(() => decoderLayer(lookupIn(frozen), config, hidden, cos!, sin!, mask)), reps.layer);
  const trainable = makeLayer(true);
  results['qwen3 layer forward+backward'] = timed(() => {
    for (const p of trainable.values()) p.grad = undefined;
    decoderLayer(lookupIn(trainable), config, hidden, cos!, sin!, mask).sum().backward();
  }, reps.layer);
  torch.dispose([a, b, c, d, hidden, cos, sin, mask, ...frozen.values(), ...trainable.values()]);
  return results;
}

function runPyTorch(): { torch: string; threads: number; results: Record<string, number> } {
  const run = spawnSync(python, [join(ROOT, 'bench/engine_baseline.py'), JSON.stringify({ threads, reps })], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
  });
  if (run.status !== 0) {
    throw new Error(`the PyTorch baseline failed (${python}): ${run.stderr || run.error?.message}. Install Debian's python3-torch: apt-get install -y python3-torch`);
  }
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

const flops: Record<string, number> = {
  'gemm 1024x1024x1024': 2 * 1024 ** 3,
  'gemm 2048x1024x4096': 2 * 2048 * 1024 * 4096,
};

function bestOf(runs: Record<string, number>[]): Record<string, number> {
  const best: Record<string, number> = {};
  for (const run of runs) for (const [k, v] of Object.entries(run)) best[k] = Math.min(best[k] ?? Infinity, v);
  return best;
}

torch.setNumThreads(threads);
console.log(`bench/engine: ${threads} thread(s), ${rounds} alternating rounds; embtune on libtorch ${torch.libtorchVersion()} (BLAS: ${torch.blasLibrary().kind}) vs PyTorch via ${python}`);
const theirs: Record<string, number>[] = [];
const mine: Record<string, number>[] = [];
let pytorchVersion = '';
const runBaseline = () => {
  if (!withBaseline) return;
  const baseline = runPyTorch();
  pytorchVersion = `${baseline.torch}, ${baseline.threads} thread(s)`;
  theirs.push(baseline.results);
};
for (let r = 0; r < rounds; r++) {
  // Alternate which side goes first: whatever the machine does after one side (a large
  // process exiting, the kernel reclaiming its memory) then falls on both alike.
  if (r % 2 === 0) {
    runBaseline();
    mine.push(runEmbtune());
  } else {
    mine.push(runEmbtune());
    runBaseline();
  }
  process.stderr.write(`round ${r + 1}/${rounds} done\n`);
}
const baseline = { results: bestOf(theirs) };
const ours = bestOf(mine);
console.log(`PyTorch ${pytorchVersion}\n`);
const rows = Object.keys(ours).map((name) => {
  const e = ours[name]!;
  const p = baseline.results[name] ?? NaN;
  const rate = flops[name] ? `  (${(flops[name]! / e / 1e9).toFixed(0)} vs ${(flops[name]! / p / 1e9).toFixed(0)} GFLOP/s)` : '';
  return `${name.padEnd(30)} embtune ${(e * 1000).toFixed(1).padStart(8)} ms   PyTorch ${(p * 1000).toFixed(1).padStart(8)} ms   ratio ${(p / e).toFixed(3)}${rate}`;
});
console.log(rows.join('\n'));
console.log('\nratio = PyTorch time / embtune time (goal ≥ 0.95)');
