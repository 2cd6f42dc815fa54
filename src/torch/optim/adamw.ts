/**
 * AdamW, identical to `torch.optim.AdamW` (decoupled weight decay, bias correction), step for
 * step as torch 1.13's `_single_tensor_adamw` (torch/optim/adamw.py):
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
 */
import { Tensor } from '../tensor.js';
import { zeros_like } from '../creation.js';
import { noGrad } from '../autograd.js';
import { keep, dispose } from '../scope.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weight_decay?: number;
  amsgrad?: boolean;
}

export interface ParamGroup extends AdamWOptions {
  params: Tensor[];
}

interface ResolvedGroup {
  params: Tensor[];
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
  amsgrad: boolean;
}

export interface AdamWParamState {
  step: number;
  exp_avg: Tensor;
  exp_avg_sq: Tensor;
  max_exp_avg_sq?: Tensor;
}

const DEFAULTS = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weight_decay: 1e-2, amsgrad: false };

export class AdamW {
  readonly param_groups: ResolvedGroup[];
  /** Per-parameter state, created at the parameter's first step. */
  readonly state = new Map<Tensor, AdamWParamState>();

  constructor(params: Tensor[] | ParamGroup[], defaults: AdamWOptions = {}) {
    const base = { ...DEFAULTS, ...defaults };
    const groups: ParamGroup[] = params.length > 0 && params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    this.param_groups = groups.map((g) => {
      const group = { ...base, ...g, params: [...g.params] };
      validate(group);
      return group;
    });
  }

  /** Sets every gradient to undefined (PyTorch's `zero_grad(set_to_none=True)`). */
  zero_grad(): void {
    for (const group of this.param_groups) for (const p of group.params) p.grad = undefined;
  }

  step(): void {
    noGrad(() => {
      for (const group of this.param_groups) {
        const [beta1, beta2] = group.betas;
        for (const param of group.params) {
          const grad = param.grad;
          if (grad === undefined) continue;
          const state = this.stateOf(param, group.amsgrad);
          state.step += 1;
          param.mul_(1 - group.lr * group.weight_decay);
          state.exp_avg.mul_(beta1).add_(grad, 1 - beta1);
          state.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
          const biasCorrection1 = 1 - beta1 ** state.step;
          const biasCorrection2 = 1 - beta2 ** state.step;
          const stepSize = group.lr / biasCorrection1;
          const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
          let second = state.exp_avg_sq;
          if (state.max_exp_avg_sq) {
            const running = state.max_exp_avg_sq.maximum(state.exp_avg_sq);
            state.max_exp_avg_sq.copy_(running);
            running.dispose();
            second = state.max_exp_avg_sq;
          }
          const root = second.sqrt();
          const denom = root.div(biasCorrection2Sqrt).add_(group.eps);
          param.addcdiv_(state.exp_avg, denom, -stepSize);
          dispose([grad, root, denom]);
        }
      }
    });
  }

  private stateOf(param: Tensor, amsgrad: boolean): AdamWParamState {
    let state = this.state.get(param);
    if (!state) {
      state = { step: 0, exp_avg: keep(zeros_like(param)), exp_avg_sq: keep(zeros_like(param)) };
      if (amsgrad) state.max_exp_avg_sq = keep(zeros_like(param));
      this.state.set(param, state);
    }
    return state;
  }

  /** Frees the moment tensors. */
  dispose(): void {
    for (const s of this.state.values()) dispose([s.exp_avg, s.exp_avg_sq, s.max_exp_avg_sq]);
    this.state.clear();
  }
}

function validate(g: ResolvedGroup): void {
  if (!(g.lr >= 0)) throw new Error(`AdamW: invalid learning rate ${g.lr}`);
  if (!(g.eps >= 0)) throw new Error(`AdamW: invalid epsilon ${g.eps}`);
  if (!(g.betas[0] >= 0 && g.betas[0] < 1)) throw new Error(`AdamW: invalid beta1 ${g.betas[0]} (must be in [0, 1))`);
  if (!(g.betas[1] >= 0 && g.betas[1] < 1)) throw new Error(`AdamW: invalid beta2 ${g.betas[1]} (must be in [0, 1))`);
  if (!(g.weight_decay >= 0)) throw new Error(`AdamW: invalid weight_decay ${g.weight_decay}`);
}
