// The stage framework on small stages of its own (no model): manifests with inputs' hashes,
// config and timings; skipping on a rerun; a config change rerunning that stage and everything
// downstream only; an edited input; --from; --dry-run; a failing stage leaving the previous
// result in place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePipelineConfig, readManifest, type PipelineConfig, type StageDefinition, type StageName } from '../../src/pipeline/index.js';
import { runStages } from '../../src/pipeline/runner.js';
import { hashFile } from '../../src/pipeline/hash.js';

interface Knobs {
  splitSeed: number;
  trainLr: number;
  failTrain?: boolean;
}

/** Four stages that copy text along (split → mine → train → eval), each using one knob. */
function stages(knobs: Knobs, input: string, calls: StageName[]): StageDefinition[] {
  const make = (name: StageName, needs: StageName[], section: () => unknown, body: (read: (s: StageName) => string) => string): StageDefinition => ({
    name,
    needs: () => needs,
    enabled: () => true,
    section,
    inputs: () => (name === 'split' ? [input] : []),
    async run(ctx) {
      calls.push(name);
      if (name === 'train' && knobs.failTrain) throw new Error('train failed on purpose');
      writeFileSync(join(ctx.dir, 'out.txt'), body((s) => readFileSync(ctx.upstreamPath(s, 'text'), 'utf8')));
      return { text: 'out.txt' };
    },
  });
  return [
    make('split', [], () => ({ seed: knobs.splitSeed }), () => `split(${readFileSync(input, 'utf8')}, ${knobs.splitSeed})`),
    make('mine', ['split'], () => ({}), (read) => `mine(${read('split')})`),
    make('train', ['mine'], () => ({ lr: knobs.trainLr }), (read) => `train(${read('mine')}, ${knobs.trainLr})`),
    make('eval', ['train', 'split'], () => ({}), (read) => `eval(${read('train')})`),
  ];
}

function withRun(fn: (config: PipelineConfig, input: string, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pipeline-runner-'));
  const input = join(dir, 'data.txt');
  writeFileSync(input, 'rows');
  writeFileSync(join(dir, 'p.yaml'), '');
  const config = parsePipelineConfig({ output_dir: join(dir, 'run'), data: { pairs: input }, model: { base: 'org/model' } }, { file: join(dir, 'p.yaml') });
  return fn(config, input, dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('every stage writes its outputs and a manifest (key, config, input hashes, upstream files, timings); a rerun skips them all', async () => {
  await withRun(async (config, input) => {
    const knobs = { splitSeed: 1, trainLr: 0.1 };
    const calls: StageName[] = [];
    const first = await runStages(config, stages(knobs, input, calls));
    assert.deepEqual(calls, ['split', 'mine', 'train', 'eval']);
    assert.deepEqual(first.ran, calls);
    assert.equal(readFileSync(join(config.outputDir, 'eval', 'out.txt'), 'utf8'), 'eval(train(mine(split(rows, 1)), 0.1))');
    const split = readManifest(join(config.outputDir, 'split'))!;
    assert.deepEqual(split.config, { seed: 1 });
    assert.deepEqual(split.inputs, { [input]: hashFile(input) });
    assert.deepEqual(Object.keys(split.files), ['out.txt']);
    assert.equal(split.files['out.txt']!.sha256, hashFile(join(config.outputDir, 'split', 'out.txt')));
    assert.ok(split.seconds >= 0 && split.finishedAt >= split.startedAt);
    const evalManifest = readManifest(join(config.outputDir, 'eval'))!;
    assert.deepEqual(Object.keys(evalManifest.upstream).sort(), ['split', 'train']);
    assert.deepEqual(evalManifest.upstream.train!.files, readManifest(join(config.outputDir, 'train'))!.files);
    // No temporary folders are left behind.
    assert.deepEqual(readdirSync(config.outputDir).filter((n) => n.startsWith('.') && n !== '.hash-cache.json'), []);

    calls.length = 0;
    const second = await runStages(config, stages(knobs, input, calls));
    assert.deepEqual(calls, []);
    assert.ok(second.plan.every((p) => p.action === 'skip' && /^up to date/.test(p.reason)));
  });
});

test('a changed config value reruns its stage and everything downstream, not the stages before it', async () => {
  await withRun(async (config, input) => {
    const calls: StageName[] = [];
    await runStages(config, stages({ splitSeed: 1, trainLr: 0.1 }, input, calls));
    calls.length = 0;
    const lines: string[] = [];
    const run = await runStages(config, stages({ splitSeed: 1, trainLr: 0.2 }, input, calls), { say: (l) => lines.push(l) });
    assert.deepEqual(calls, ['train', 'eval']);
    assert.deepEqual(run.plan.map((p) => [p.stage, p.action]), [['split', 'skip'], ['mine', 'skip'], ['train', 'run'], ['eval', 'run']]);
    assert.match(run.plan[2]!.reason, /config changed: lr 0\.1 → 0\.2/);
    assert.match(run.plan[3]!.reason, /upstream stage 'train' reruns/);
    assert.equal(readFileSync(join(config.outputDir, 'eval', 'out.txt'), 'utf8'), 'eval(train(mine(split(rows, 1)), 0.2))');
  });
});

test('an edited input file reruns the stage that reads it and all after it; a deleted output reruns its stage', async () => {
  await withRun(async (config, input) => {
    const calls: StageName[] = [];
    const knobs = { splitSeed: 1, trainLr: 0.1 };
    await runStages(config, stages(knobs, input, calls));
    writeFileSync(input, 'other rows');
    calls.length = 0;
    const run = await runStages(config, stages(knobs, input, calls));
    assert.match(run.plan[0]!.reason, /input .*data\.txt changed/);
    assert.deepEqual(calls, ['split', 'mine', 'train', 'eval']);
    rmSync(join(config.outputDir, 'mine', 'out.txt'));
    calls.length = 0;
    const again = await runStages(config, stages(knobs, input, calls));
    assert.match(again.plan[1]!.reason, /its output out\.txt is missing or changed/);
    assert.deepEqual(calls, ['mine', 'train', 'eval']);
  });
});

test('--from STAGE reruns that stage and everything after it; --dry-run prints the plan and runs nothing', async () => {
  await withRun(async (config, input) => {
    const calls: StageName[] = [];
    const knobs = { splitSeed: 1, trainLr: 0.1 };
    await runStages(config, stages(knobs, input, calls));
    calls.length = 0;
    const lines: string[] = [];
    const dry = await runStages(config, stages({ ...knobs, trainLr: 0.3 }, input, calls), { dryRun: true, say: (l) => lines.push(l) });
    assert.deepEqual(calls, []);
    assert.equal(dry.manifests.size, 0);
    const printed = lines.join('\n');
    assert.match(printed, /split\s+skip\s+up to date/);
    assert.match(printed, /train\s+run\s+config changed: lr 0\.1 → 0\.3/);
    assert.match(printed, /eval\s+run\s+upstream stage 'train' reruns/);
    assert.equal(readManifest(join(config.outputDir, 'train'))!.config && (readManifest(join(config.outputDir, 'train'))!.config as { lr: number }).lr, 0.1);

    const from = await runStages(config, stages(knobs, input, calls), { from: 'mine' });
    assert.deepEqual(calls, ['mine', 'train', 'eval']);
    assert.deepEqual(from.plan.map((p) => p.reason), [from.plan[0]!.reason, '--from mine', 'after --from mine', 'after --from mine']);
    await assert.rejects(runStages(config, stages(knobs, input, calls), { from: 'fuse' }), /--from fuse: that stage is not part of this pipeline/);
  });
});

test('a stage that fails leaves its previous result and manifest untouched, and the next run retries it', async () => {
  await withRun(async (config, input) => {
    const calls: StageName[] = [];
    await runStages(config, stages({ splitSeed: 1, trainLr: 0.1 }, input, calls));
    const before = readFileSync(join(config.outputDir, 'train', 'manifest.json'), 'utf8');
    await assert.rejects(runStages(config, stages({ splitSeed: 1, trainLr: 0.5, failTrain: true }, input, calls)), /train failed on purpose/);
    assert.equal(readFileSync(join(config.outputDir, 'train', 'manifest.json'), 'utf8'), before);
    assert.equal(readFileSync(join(config.outputDir, 'train', 'out.txt'), 'utf8'), 'train(mine(split(rows, 1)), 0.1)');
    assert.ok(!readdirSync(config.outputDir).some((n) => n.includes('.tmp-')));
    // A killed run's temporary folder is cleared by the next run.
    mkdirSync(join(config.outputDir, '.train.tmp-999999'));
    calls.length = 0;
    await runStages(config, stages({ splitSeed: 1, trainLr: 0.5 }, input, calls));
    assert.deepEqual(calls, ['train', 'eval']);
    assert.ok(!existsSync(join(config.outputDir, '.train.tmp-999999')));
    assert.ok(existsSync(join(config.outputDir, 'eval', 'manifest.json')));
  });
});
