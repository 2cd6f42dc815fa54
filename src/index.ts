/** embtune: domain embedding models, made and served from TypeScript. */
export * as torch from './torch/index.js';
