/**
 * Learning-rate schedules, as transformers' `get_cosine_schedule_with_warmup` on top of
 * torch's `LambdaLR` (REFERENCE §3.5): lr = base_lr · multiplier(s), with s the number of
 * optimizer steps already taken; linear warmup over W steps, then half a cosine to 0 at T.
 */

export interface HasParamGroups {
  param_groups: { lr: number }[];
}

/** The multiplier of `get_cosine_schedule_with_warmup` after `step` optimizer steps. */
export function cosineWithWarmup(step: number, numWarmupSteps: number, numTrainingSteps: number, numCycles = 0.5): number {
  if (step < numWarmupSteps) return step / Math.max(1, numWarmupSteps);
  const progress = (step - numWarmupSteps) / Math.max(1, numTrainingSteps - numWarmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

/** `torch.optim.lr_scheduler.LambdaLR`: sets each group's lr to base_lr · lambda(last_epoch). */
export class LambdaLR {
  readonly base_lrs: number[];
  last_epoch = 0;

  constructor(
    readonly optimizer: HasParamGroups,
    readonly lrLambda: (step: number) => number,
    lastEpoch = -1,
  ) {
    this.base_lrs = optimizer.param_groups.map((g) => g.lr);
    this.last_epoch = lastEpoch;
    this.step();
  }

  /** Advances one optimizer step (call after `optimizer.step()`, as in PyTorch). */
  step(): void {
    this.last_epoch += 1;
    this.optimizer.param_groups.forEach((g, i) => {
      g.lr = this.base_lrs[i]! * this.lrLambda(this.last_epoch);
    });
  }

  get_last_lr(): number[] {
    return this.optimizer.param_groups.map((g) => g.lr);
  }

  state_dict(): { last_epoch: number; base_lrs: number[] } {
    return { last_epoch: this.last_epoch, base_lrs: [...this.base_lrs] };
  }

  load_state_dict(state: { last_epoch: number; base_lrs: number[] }): void {
    this.base_lrs.splice(0, this.base_lrs.length, ...state.base_lrs);
    this.last_epoch = state.last_epoch;
    this.optimizer.param_groups.forEach((g, i) => {
      g.lr = this.base_lrs[i]! * this.lrLambda(this.last_epoch);
    });
  }
}

export function getCosineScheduleWithWarmup(optimizer: HasParamGroups, numWarmupSteps: number, numTrainingSteps: number, numCycles = 0.5): LambdaLR {
  return new LambdaLR(optimizer, (step) => cosineWithWarmup(step, numWarmupSteps, numTrainingSteps, numCycles));
}
