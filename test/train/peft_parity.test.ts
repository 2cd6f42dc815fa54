// One LoRA training step with the default dropout (0.05) against PyTorch + PEFT's LoRA layer
// (bench/train_baseline.py on Debian's python3-torch): `bench/train --check` on a tiny model —
// same loss, every LoRA gradient and the adapter after AdamW, with and without gradient
// checkpointing on both sides. CI installs python3-torch (.ci/run) so that this runs there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers.js';

const PYTHON = '/usr/bin/python3';

test('a LoRA step with dropout 0.05 equals PyTorch + PEFT (bench/train --check): loss, gradients and the updated adapter', () => {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, `${PYTHON} cannot import torch: install Debian's python3-torch (apt-get install -y python3-torch), as .ci/run does\n${probe.stderr ?? probe.error}`);
  const run = spawnSync(process.execPath, [join(ROOT, 'dist/bench/train.js'), '--check', '--python', PYTHON, '--threads', '2'], { encoding: 'utf8', timeout: 300_000 });
  const output = `${run.stdout}${run.stderr}`;
  assert.equal(run.status, 0, output);
  assert.match(output, /dropout 0\.05/);
  // Four comparisons of embtune against PyTorch (each mode against each), one between the PyTorch modes.
  assert.equal((output.match(/ — same$/gm) ?? []).length, 5, output);
  assert.doesNotMatch(output, /DIFFERENT/);
  assert.match(output, /check passed/);
});
