/**
 * Where tensors live: parsing `cpu | cuda | cuda:N`, and checking that this build and this machine
 * have the device before any weight is read, so that asking for a GPU the addon cannot reach is a
 * sentence that says what to do rather than libtorch's "Torch not compiled with CUDA enabled"
 * halfway through loading a model.
 */
import { native } from './native.js';
import type { Device } from './tensor.js';

/** The accepted spellings, for messages. */
export const DEVICE_FORMS = "'cpu', 'cuda' (= cuda:0) or 'cuda:N' (N = 0, 1, …)";

/** A device string that is not one of the accepted forms (a usage mistake). */
export class DeviceSyntaxError extends Error {
  constructor(readonly spec: string) {
    super(`device must be ${DEVICE_FORMS}, got '${spec}'`);
    this.name = 'DeviceSyntaxError';
  }
}

/** A well-formed device that this build of the addon or this machine does not have. */
export class DeviceUnavailableError extends Error {
  constructor(
    readonly device: Device,
    message: string,
  ) {
    super(message);
    this.name = 'DeviceUnavailableError';
  }
}

/**
 * `cpu`, `cuda` or `cuda:N` in canonical form (`cuda` → `cuda:0`, as a tensor's `.device`
 * reports it); anything else throws `DeviceSyntaxError`. Does not look at the hardware.
 */
export function parseDevice(spec: string): Device {
  const s = spec.trim();
  if (s === 'cpu') return 'cpu';
  if (s === 'cuda') return 'cuda:0';
  const m = /^cuda:(\d{1,4})$/.exec(s);
  if (!m) throw new DeviceSyntaxError(spec);
  return `cuda:${Number(m[1])}`;
}

/** What `checkDevice` needs to know about the build; the addon's answers by default (a seam for tests of the wording). */
export interface CudaRuntime {
  /** Whether the addon was linked against a libtorch with CUDA (libtorch_cuda.so). */
  compiled: boolean;
  /** CUDA devices libtorch sees (0 without CUDA). */
  deviceCount: number;
  /** The libtorch folder the addon was built against. */
  libtorchRoot: string;
}

function addonRuntime(): CudaRuntime {
  return { compiled: native.compiledWithCuda(), deviceCount: native.cudaDeviceCount(), libtorchRoot: native.libtorchRoot() };
}

const REBUILD_HINT =
  'To run on a GPU, build the addon against a libtorch with CUDA: set LIBTORCH to an unpacked CUDA libtorch archive (the folder with include/ and lib/, lib/ holding libtorch_cuda.so), ' +
  'or install a CUDA build of PyTorch that python3 imports (its package folder has include/ and lib/); then run `npm run build:native` — `node native/find-libtorch.mjs` shows which libtorch it finds.';

/**
 * `parseDevice(spec)`, then a check that the device exists here: CUDA asked of a CPU-only build,
 * of a CUDA build on a machine with no visible GPU, or `cuda:N` past the device count throws
 * `DeviceUnavailableError` naming the device asked for and the fix. Returns the canonical device.
 */
export function checkDevice(spec: Device | string, runtime: CudaRuntime = addonRuntime()): Device {
  const device = parseDevice(spec);
  if (device === 'cpu') return device;
  const index = Number(device.slice('cuda:'.length));
  if (!runtime.compiled) {
    throw new DeviceUnavailableError(device, `device '${spec}' was asked for, but CUDA is not available: the embtune addon was built against a CPU-only libtorch (${runtime.libtorchRoot}). ${REBUILD_HINT}`);
  }
  if (runtime.deviceCount === 0) {
    throw new DeviceUnavailableError(
      device,
      `device '${spec}' was asked for, but no CUDA device is visible: the addon has CUDA (libtorch in ${runtime.libtorchRoot}), yet libtorch finds no GPU (is the NVIDIA driver loaded? does CUDA_VISIBLE_DEVICES hide them? \`embtune doctor\` lists the devices)`,
    );
  }
  if (index >= runtime.deviceCount) {
    const have = Array.from({ length: runtime.deviceCount }, (_, i) => `cuda:${i}`).join(', ');
    throw new DeviceUnavailableError(device, `device '${spec}' was asked for, but this machine has ${runtime.deviceCount} CUDA device${runtime.deviceCount === 1 ? '' : 's'} (${have}); \`embtune doctor\` lists them`);
  }
  return device;
}

/** A CUDA device as the driver describes it. */
export interface CudaDeviceInfo {
  device: Device;
  name: string;
  /** Total memory in bytes. */
  totalMemory: number;
}

/**
 * The CUDA devices with their names and memory (what `embtune doctor` lists); empty in a CPU-only
 * build or with no GPU. Where the driver cannot be asked (no libcuda.so.1), names say so.
 */
export function cudaDevices(): CudaDeviceInfo[] {
  const count = native.cudaDeviceCount();
  if (count === 0) return [];
  try {
    return native.cudaDeviceProperties().map((p, i) => ({ device: `cuda:${i}` as Device, name: p.name, totalMemory: p.totalMemory }));
  } catch (err) {
    // libtorch sees the devices but the driver would not describe them: list them anyway.
    const why = (err as Error).message;
    return Array.from({ length: count }, (_, i) => ({ device: `cuda:${i}` as Device, name: `unknown (${why})`, totalMemory: 0 }));
  }
}
