/**
 * The learning-rate multipliers of transformers' schedulers (`get_scheduler`), as functions of
 * s = optimizer steps already taken, W warmup steps, T total steps (REFERENCE §3.5).
 */
import { cosineWithWarmup } from '../torch/index.js';
import type { SchedulerType } from './config.js';

export function scheduleMultiplier(type: SchedulerType, s: number, warmup: number, total: number): number {
  switch (type) {
    case 'cosine':
      return cosineWithWarmup(s, warmup, total);
    case 'linear':
      if (s < warmup) return s / Math.max(1, warmup);
      return Math.max(0, (total - s) / Math.max(1, total - warmup));
    case 'constant':
      return 1;
    case 'constant_with_warmup':
      return s < warmup ? s / Math.max(1, warmup) : 1;
  }
}
