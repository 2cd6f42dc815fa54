/**
 * embtune's tensor API: PyTorch's names and semantics over libtorch. Import as
 * `import * as torch from 'embtune/torch'` and read model code beside its Python source.
 */
import { configureDefaults } from './runtime.js';

export { Tensor, type Device, type Operand, type Scalar, isDeviceName } from './tensor.js';
export { type DType, DTYPES, isFloatingPoint, type TypedArrayOf } from './dtype.js';
export * from './creation.js';
export * from './ops.js';
export { noGrad, enableGrad, isGradEnabled, inferenceMode } from './autograd.js';
export { tidy, keep, dispose } from './scope.js';
export { DEVICE_FORMS, DeviceSyntaxError, DeviceUnavailableError, checkDevice, cudaDevices, parseDevice, type CudaDeviceInfo, type CudaRuntime } from './device.js';
export * as F from './functional.js';
export * as kernels from './kernels.js';
export { AdamW, type AdamWOptions, type ParamGroup } from './optim/adamw.js';
export * as distributed from './distributed.js';
export { clipGradNorm } from './optim/clip_grad.js';
export { LambdaLR, cosineWithWarmup, getCosineScheduleWithWarmup } from './optim/schedule.js';
export {
  blasLibrary,
  cuda,
  cpuHasBf16,
  blasNumThreads,
  defaultNumThreads,
  threadsFromEnv,
  getNumThreads,
  libtorchPath,
  libtorchVersion,
  liveTensors,
  heapBytes,
  allocatorStats,
  emptyCache,
  externalBytes,
  parallelInfo,
  setNumThreads,
} from './runtime.js';

configureDefaults();
