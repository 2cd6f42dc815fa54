/**
 * The dynamic-batching queue of the model worker. Requests wait in arrival order; a batch is the
 * oldest request plus the later ones of its group (same task, adapter, kind and output options:
 * they can share forward passes), as long as the batch stays within the token and request budgets
 * (TEI's `--max-batch-tokens`, `--max-batch-requests`, `core/src/queue.rs`). The oldest request
 * always goes, even alone past the token budget — its own forward passes are then cut to the
 * budget — so nothing waits forever. Requests of other groups keep their place for the next batch.
 */
export interface Queued {
  readonly id: number;
  /** Requests with equal keys may share a batch. */
  readonly key: string;
  /** Tokens of all its inputs. */
  readonly tokens: number;
}

export interface BatchBudget {
  maxTokens: number;
  maxRequests: number | undefined;
}

export class BatchQueue<T extends Queued> {
  #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Drops a waiting request (its client went away); false when it is not waiting (running or done). */
  remove(id: number): boolean {
    const at = this.#items.findIndex((item) => item.id === id);
    if (at < 0) return false;
    this.#items.splice(at, 1);
    return true;
  }

  /** Takes the next batch out of the queue (empty when nothing waits). */
  next(budget: BatchBudget): T[] {
    const first = this.#items[0];
    if (first === undefined) return [];
    const batch = [first];
    let tokens = first.tokens;
    const rest: T[] = [];
    let full = false;
    for (const item of this.#items.slice(1)) {
      const fits = !full && item.key === first.key && tokens + item.tokens <= budget.maxTokens && (budget.maxRequests === undefined || batch.length < budget.maxRequests);
      if (fits) {
        batch.push(item);
        tokens += item.tokens;
      } else {
        // Once a request of the group does not fit, later ones of the group wait too (arrival order).
        if (item.key === first.key) full = true;
        rest.push(item);
      }
    }
    this.#items = rest;
    return batch;
  }
}
