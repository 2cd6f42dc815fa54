/**
 * Data-parallel training over torch.distributed (c10d Gloo), as HF Trainer + DDP + ms-swift do it:
 *
 * - Every rank starts from rank 0's trainable weights (broadcast), so LoRA's random init agrees.
 * - Every rank takes a disjoint shard of each epoch's order, with torch's DistributedSampler
 *   semantics and drop_last: the order cut to a multiple of the world size, rank r taking
 *   positions r, r+W, r+2W, … So micro-batch k of rank r holds rows of global batch k, and the
 *   W micro-batches of a step are exactly one process's micro-batch of W·B rows.
 * - After the backward passes of a step, gradients are all-reduced and averaged (DDP's
 *   semantics), in flat buckets of about 25 MB (DDP's default bucket_cap_mb) so that a model with
 *   hundreds of tensors costs a few collectives, not hundreds.
 * - InfoNCE with in-batch negatives (`useBatch`) gathers every rank's embeddings first, as
 *   ms-swift's InfonceLoss does (swift/loss/embedding.py): the others' copies detached, this
 *   rank's live, concatenated in rank order, and the loss taken over the whole gathered batch.
 *
 * Gradient scale. Without cross-rank negatives (useBatch off) each rank's loss is the mean over
 * its own rows, and the average of the ranks' gradients is exactly the gradient of one process
 * with all W·B rows. With cross-rank negatives every rank computes the loss L of the whole global
 * batch but differentiates only through its own embeddings, so its gradient is the part of ∇L
 * that flows through its rows; the parts sum to ∇L, and DDP's average makes the step's gradient
 * ∇L / W — 1/W of one process with the whole batch (ms-swift v3.5–v3.10 divided the loss by W
 * once more, 1/W²; later versions do not, and neither do we). AdamW on gradients g/W with ε/W
 * takes exactly the step AdamW takes on g with ε (m and √v scale with g; weight decay is decoupled),
 * so W ranks with --adam-epsilon ε/W and no clipping reproduce one process with the whole batch;
 * with the same ε the runs differ only where |g| is near ε. The logged grad_norm is 1/W of one
 * process's, and clipping (max_grad_norm) acts on that smaller norm, as in ms-swift.
 */
import { allGatherTensors, allReduce, broadcast, destroyProcessGroup, getRank, getWorldSize, initProcessGroup, isInitialized } from '../torch/distributed.js';
import { cat, noGrad, tensor, tidy, zeros, type Tensor } from '../torch/index.js';

/** DDP's default bucket size (bucket_cap_mb = 25). */
export const BUCKET_BYTES = 25 * 1024 * 1024;

export class DataParallel {
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly bucketBytes = BUCKET_BYTES,
  ) {}

  /** Rank 0 evaluates, logs and writes checkpoints; the others only train. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Rows of an epoch this rank sees (DistributedSampler with drop_last: floor(n / W)). */
  shardSize(rows: number): number {
    return Math.floor(rows / this.worldSize);
  }

  /** This rank's part of an epoch's order: positions rank, rank + W, … of its first W·floor(n/W). */
  shard(order: readonly number[]): number[] {
    const n = this.shardSize(order.length) * this.worldSize;
    const out: number[] = [];
    for (let i = this.rank; i < n; i += this.worldSize) out.push(order[i]!);
    return out;
  }

  /** Every rank gets rank 0's values of `params` (in place). */
  broadcastParameters(params: readonly Tensor[]): void {
    noGrad(() => {
      for (const p of params) broadcast(p, 0);
    });
  }

  /**
   * Replaces every parameter's gradient by its mean over the ranks. A parameter without a
   * gradient contributes zeros and keeps none (DDP requires every rank to use the same ones).
   */
  averageGradients(params: readonly Tensor[]): void {
    let bucket: Tensor[] = [];
    let bytes = 0;
    const flush = (): void => {
      if (bucket.length === 0) return;
      const members = bucket;
      tidy(() =>
        noGrad(() => {
          const flat = cat(members.map((p) => (p.grad ? p.grad.reshape([-1]) : zeros([p.numel()], { dtype: p.dtype }))));
          allReduce(flat, 'avg');
          let offset = 0;
          for (const p of members) {
            const n = p.numel();
            p.grad?.copy_(flat.narrow(0, offset, n).view(p.shape));
            offset += n;
          }
        }),
      );
      bucket = [];
      bytes = 0;
    };
    for (const p of params) {
      // One bucket holds one dtype (a bfloat16 parameter next to float32 ones starts a new one).
      if (bucket.length > 0 && (bucket[0]!.dtype !== p.dtype || bytes + p.numel() * 4 > this.bucketBytes)) flush();
      bucket.push(p);
      bytes += p.numel() * 4;
    }
    flush();
  }

  /**
   * The step's loss averaged over the ranks (what HF Trainer logs) and whether any rank was
   * interrupted, so that every rank takes the same decision to stop or to go on.
   */
  agree(loss: number, interrupted: boolean): { loss: number; interrupted: boolean } {
    return tidy(() => {
      const t = tensor([loss, interrupted ? 1 : 0], { dtype: 'float64' });
      allReduce(t, 'sum');
      const [sum, stops] = t.tolist() as number[];
      return { loss: sum! / this.worldSize, interrupted: stops! > 0 };
    });
  }

  /**
   * ms-swift's cross-rank batch: every rank's embeddings (rows may differ per rank) in rank order,
   * this rank's rows differentiable and the others' detached, with the group sizes to match.
   */
  gatherEmbeddings(local: Tensor, groupSizes: readonly number[]): { embeddings: Tensor; groupSizes: number[] } {
    if (local.device !== 'cpu') throw new Error(`data-parallel training runs on the Gloo backend, which works on CPU tensors; the embeddings are on ${local.device}`);
    const counts = allGatherTensors(tensor([local.size(0) as number, groupSizes.length], { dtype: 'int64' })).map((t) => t.tolist() as number[]);
    const maxRows = Math.max(...counts.map((c) => c[0]!));
    const maxGroups = Math.max(...counts.map((c) => c[1]!));
    const sizes = allGatherTensors(tensor([...groupSizes, ...new Array<number>(maxGroups - groupSizes.length).fill(0)], { dtype: 'int64' }));
    const width = local.size(1) as number;
    const padded = noGrad(() => {
      const rows = local.size(0) as number;
      const detached = local.detach();
      return rows === maxRows ? detached : cat([detached, zeros([maxRows - rows, width], { dtype: local.dtype })]);
    });
    const gathered = allGatherTensors(padded);
    const pieces = gathered.map((g, r) => (r === this.rank ? local : g.narrow(0, 0, counts[r]![0]!)));
    const allSizes = sizes.flatMap((s, r) => (s.tolist() as number[]).slice(0, counts[r]![1]!));
    return { embeddings: cat(pieces), groupSizes: allSizes };
  }

  /** Rank 0's string on every rank (the run folder, named by rank 0's clock). */
  broadcastString(value: string): string {
    return tidy(() => {
      const bytes = this.isMain ? new TextEncoder().encode(value) : new Uint8Array(0);
      const length = tensor([bytes.length], { dtype: 'int64' });
      broadcast(length, 0);
      const n = length.item() as number;
      if (n === 0) return '';
      const data = this.isMain ? tensor(Array.from(bytes), { dtype: 'uint8' }) : zeros([n], { dtype: 'uint8' });
      broadcast(data, 0);
      return new TextDecoder().decode(Uint8Array.from(data.tolist() as number[]));
    });
  }
}

export interface DataParallelEnvOptions {
  /** Rendezvous and collective timeout (default PyTorch's 30 minutes). */
  timeoutMs?: number;
}

/**
 * The data-parallel group torchrun's (or `embtune train --nproc-per-node`'s) environment asks
 * for: WORLD_SIZE > 1 joins the default process group through env:// (RANK, MASTER_ADDR,
 * MASTER_PORT); otherwise undefined, one process. A group initialised by the caller is reused.
 */
export function dataParallelFromEnv(opts: DataParallelEnvOptions = {}): DataParallel | undefined {
  if (isInitialized()) return getWorldSize() > 1 ? new DataParallel(getRank(), getWorldSize()) : undefined;
  const world = Number(process.env.WORLD_SIZE ?? '1');
  if (!Number.isInteger(world) || world < 1) throw new Error(`WORLD_SIZE must be a positive integer, got '${process.env.WORLD_SIZE}'`);
  if (world === 1) return undefined;
  initProcessGroup({ backend: 'gloo', initMethod: 'env://', timeoutMs: opts.timeoutMs });
  return new DataParallel(getRank(), getWorldSize());
}

/** Leaves the group that dataParallelFromEnv joined. */
export function leaveDataParallel(): void {
  if (isInitialized()) destroyProcessGroup();
}
