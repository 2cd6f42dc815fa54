/**
 * `embtune doctor`: what engine this is and whether it works — libtorch version and path,
 * devices, threads, CUDA and bfloat16 support — then a tiny forward/backward whose gradient is
 * checked against the closed form on every device.
 */
import { availableParallelism } from 'node:os';
import * as torch from '../torch/index.js';

export interface DoctorReport {
  node: string;
  libtorch: { version: string; path: string; parallel: string };
  blas: { path: string; kind: string };
  threads: { torch: number; cores: number };
  devices: string[];
  /** Each CUDA device with the driver's name and its total memory in bytes (empty without CUDA). */
  cudaDevices: { device: string; name: string; totalMemory: number }[];
  cuda: { compiled: boolean; devices: number };
  bfloat16: { supported: boolean; cpuNative: boolean };
  checks: { name: string; ok: boolean; detail: string }[];
}

/** y = Σ tanh(x·W): autograd's dL/dW must equal xᵀ·(1 − tanh²(x·W)). */
function checkForwardBackward(device: string, dtype: torch.DType): { ok: boolean; detail: string } {
  return torch.tidy(() => {
    const started = performance.now();
    torch.manualSeed(0);
    const x = torch.randn([8, 16], { dtype }).to({ device });
    const w = torch.randn([16, 4], { dtype }).mul(0.1).to({ device }).requires_grad_(true);
    const loss = x.matmul(w).tanh().sum();
    loss.backward();
    const expected = torch.noGrad(() => x.T.matmul(torch.ones_like(x.matmul(w)).sub(x.matmul(w).tanh().square())));
    const error = w.grad!.sub(expected).abs().max().to('float32').item();
    const tolerance = dtype === 'bfloat16' ? 5e-2 : 1e-5;
    const ms = performance.now() - started;
    return { ok: Number.isFinite(error) && error <= tolerance, detail: `loss ${loss.to('float32').item().toFixed(4)}, max |grad − closed form| ${error.toExponential(1)} (${ms.toFixed(1)} ms)` };
  });
}

export function runDoctor(): DoctorReport {
  const cudaDevices = torch.cuda.deviceCount();
  const devices = ['cpu', ...Array.from({ length: cudaDevices }, (_, i) => `cuda:${i}`)];
  const checks: DoctorReport['checks'] = [];
  for (const device of devices) {
    checks.push({ name: `forward/backward float32 on ${device}`, ...checkForwardBackward(device, 'float32') });
    checks.push({ name: `forward/backward bfloat16 on ${device}`, ...checkForwardBackward(device, 'bfloat16') });
  }
  const parallel = torch.getNumThreads();
  return {
    node: process.version,
    libtorch: { version: torch.libtorchVersion(), path: torch.libtorchPath(), parallel: parallelBackend() },
    blas: torch.blasLibrary(),
    threads: { torch: parallel, cores: availableParallelism() },
    devices,
    cudaDevices: torch.cudaDevices(),
    cuda: { compiled: torch.cuda.compiled(), devices: cudaDevices },
    bfloat16: { supported: checks.some((c) => c.name.includes('bfloat16') && c.ok), cpuNative: torch.cpuHasBf16() },
    checks,
  };
}

function formatGiB(bytes: number): string {
  return bytes > 0 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : 'memory unknown';
}

/** The CUDA line: what this build can reach, and how to get CUDA where it cannot. */
function cudaLine(r: DoctorReport): string {
  if (!r.cuda.compiled) {
    return `CUDA is not available in this build: the addon was built against a CPU-only libtorch (${r.libtorch.path}); to use a GPU, rebuild against a CUDA libtorch (LIBTORCH=/path/to/libtorch, or a CUDA PyTorch that python3 imports) with \`npm run build:native\``;
  }
  if (r.cuda.devices === 0) return 'compiled in, but no CUDA device is visible (NVIDIA driver? CUDA_VISIBLE_DEVICES?)';
  return `compiled in, ${r.cuda.devices} device${r.cuda.devices === 1 ? '' : 's'} (--device cuda:0${r.cuda.devices > 1 ? ` … cuda:${r.cuda.devices - 1}` : ''})`;
}

function parallelBackend(): string {
  const info = torch.parallelInfo();
  return info.match(/(OpenMP[^\n]*|native thread pool|TBB[^\n]*)/)?.[1]?.trim() ?? 'unknown';
}

export function formatDoctor(r: DoctorReport): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const lines = [
    'embtune doctor',
    `  node       ${r.node}`,
    `  libtorch   ${r.libtorch.version}  (${r.libtorch.path})`,
    `  parallel   ${r.libtorch.parallel}`,
    `  blas       ${r.blas.kind} (${r.blas.path})${r.blas.kind === 'reference' ? '  ← slow: apt-get install -y libopenblas0-pthread' : ''}`,
    `  threads    ${r.threads.torch} (cores available: ${r.threads.cores}; set EMBTUNE_NUM_THREADS to change)`,
    '  devices    cpu',
    ...r.cudaDevices.map((d) => `             ${d.device}  ${d.name}, ${formatGiB(d.totalMemory)}`),
    `  cuda       ${cudaLine(r)}`,
    `  bfloat16   ${yes(r.bfloat16.supported)} (CPU has native bf16: ${yes(r.bfloat16.cpuNative)})`,
    '  checks',
    ...r.checks.map((c) => `    ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
  ];
  const failed = r.checks.filter((c) => !c.ok).length;
  lines.push(failed === 0 ? 'The engine works.' : `${failed} check(s) failed: the engine computes wrong gradients here. Rebuild with \`npm run build:native\` and report the output above.`);
  return lines.join('\n');
}
