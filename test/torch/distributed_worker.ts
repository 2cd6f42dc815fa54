/**
 * One rank of a torch.distributed test (distributed.test.ts spawns several). It reads its
 * scenario from EMBTUNE_DIST_SCENARIO (JSON) and prints one JSON line of results on stdout.
 * Imported or run without a scenario (as `node --test dist/test/` does), it does nothing.
 */
import * as torch from '../../src/torch/index.js';

const dist = torch.distributed;

export interface Scenario {
  kind: 'collectives' | 'die' | 'hang';
  initMethod?: string;
  /** Passed as options (tcp://, file://); env:// reads them from the environment. */
  rank?: number;
  worldSize?: number;
  timeoutMs: number;
  /** 'die' and 'hang': the rank that stops taking part. */
  victim?: number;
}

function say(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function collectives(): Record<string, unknown> {
  const rank = dist.getRank();
  const world = dist.getWorldSize();
  const out: Record<string, unknown> = { rank, worldSize: world, initialized: dist.isInitialized() };

  const sum = torch.tensor([rank + 1, 10 * (rank + 1), -rank]);
  dist.allReduce(sum);
  out.sum = sum.tolist();

  const avg = torch.tensor([rank, 2 * rank]);
  dist.allReduce(avg, 'avg');
  out.avg = avg.tolist();

  const max = torch.tensor([rank, -rank], { dtype: 'int64' });
  dist.allReduce(max, 'max');
  out.max = max.tolist();

  const list = Array.from({ length: world }, () => torch.zeros([2]));
  dist.allGather(list, torch.tensor([rank, 100 + rank]));
  out.gathered = list.map((t) => t.tolist());

  const into = torch.zeros([2 * world, 1]);
  dist.allGatherIntoTensor(into, torch.tensor([[rank], [-rank]]));
  out.gatheredIntoTensor = into.tolist();

  const b = torch.tensor([rank, rank, rank]);
  dist.broadcast(b, world - 1);
  out.broadcast = b.tolist();

  dist.barrier();
  out.barrier = true;
  dist.destroyProcessGroup();
  out.initializedAfterDestroy = dist.isInitialized();
  return out;
}

function main(scenario: Scenario): void {
  dist.initProcessGroup({
    backend: 'gloo',
    initMethod: scenario.initMethod,
    rank: scenario.rank,
    worldSize: scenario.worldSize,
    timeoutMs: scenario.timeoutMs,
  });
  if (scenario.kind === 'collectives') {
    say(collectives());
    return;
  }
  // 'die' and 'hang': everyone meets once, then the victim stops taking part (the test kills it,
  // or it just never calls) while the others enter an all-reduce that cannot complete.
  dist.barrier();
  if (dist.getRank() === scenario.victim) {
    say({ rank: dist.getRank(), ready: true });
    // 'die': stay alive until the test kills it. 'hang': stay silent past the others' timeout, then leave.
    setTimeout(() => process.exit(0), scenario.kind === 'hang' ? scenario.timeoutMs + 3000 : 60_000);
    return;
  }
  say({ rank: dist.getRank(), ready: true });
  const started = Date.now();
  try {
    dist.allReduce(torch.ones([4]));
    say({ rank: dist.getRank(), error: null, ms: Date.now() - started });
  } catch (err) {
    say({ rank: dist.getRank(), error: (err as Error).message, ms: Date.now() - started });
  }
  process.exit(0);
}

const raw = process.env.EMBTUNE_DIST_SCENARIO;
if (raw) main(JSON.parse(raw) as Scenario);
