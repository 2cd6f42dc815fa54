// Finds a libtorch to build the addon against, in the order DESIGN.md gives:
//   1. $LIBTORCH — the layout of the official archives (include/, lib/);
//   2. a Python `torch` install whose package folder carries include/ and lib/ (pip wheels do);
//   3. the system libtorch of Debian/Ubuntu's libtorch-dev (/usr/include/torch, libtorch.so).
// LIBTORCH, when set, must be right: a wrong path is an error, not a reason to look elsewhere.
// EMBTUNE_LIBTORCH_SKIP_PYTHON=1 skips step 2 (to build against the system libtorch although a
// Python torch is installed). Run directly it prints the result as JSON, or what it looked for
// and how to fix it.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const SYSTEM_LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];

function readVersion(includeDir) {
  const header = join(includeDir, 'torch/csrc/api/include/torch/version.h');
  if (!existsSync(header)) return undefined;
  const text = readFileSync(header, 'utf8');
  const part = (name) => text.match(new RegExp(`#define TORCH_VERSION_${name} (\\d+)`))?.[1];
  return `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
}

/** A candidate is usable when its headers and libtorch.so are both there. */
function describe(source, root, includeDir, libDir) {
  const hasHeaders = existsSync(join(includeDir, 'torch/csrc/api/include/torch/version.h'));
  const hasLib = existsSync(join(libDir, 'libtorch.so')) || existsSync(join(libDir, 'libtorch_cpu.so'));
  if (!hasHeaders || !hasLib) {
    return { ok: false, why: `${source}: ${root} (${hasHeaders ? '' : 'no torch headers under ' + includeDir + '; '}${hasLib ? '' : 'no libtorch.so in ' + libDir})` };
  }
  const libs = readdirSync(libDir);
  // /usr/include is already a system include folder; naming it with -I reorders it before the
  // C++ library's own headers and breaks their #include_next.
  const isSystemInclude = includeDir === '/usr/include' || includeDir === '/usr/local/include';
  return {
    ok: true,
    source,
    root,
    includeDirs: [...(isSystemInclude ? [] : [includeDir]), join(includeDir, 'torch/csrc/api/include')],
    libDir,
    version: readVersion(includeDir),
    cuda: libs.includes('libtorch_cuda.so'),
    hasTorchLib: libs.includes('libtorch.so'),
  };
}

function fromEnv() {
  const root = process.env.LIBTORCH;
  return describe('LIBTORCH', root, join(root, 'include'), join(root, 'lib'));
}

function fromPython() {
  if (process.env.EMBTUNE_LIBTORCH_SKIP_PYTHON === '1') return { ok: false, why: 'python torch: skipped (EMBTUNE_LIBTORCH_SKIP_PYTHON=1)' };
  const tried = [];
  for (const python of ['python3', '/usr/bin/python3']) {
    let dir;
    try {
      dir = execFileSync(python, ['-c', 'import os, torch; print(os.path.dirname(torch.__file__))'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 60_000,
      }).trim();
    } catch {
      tried.push(`python torch: ${python} cannot import torch`);
      continue;
    }
    const found = describe(`python torch (${python})`, dir, join(dir, 'include'), join(dir, 'lib'));
    if (found.ok) return found;
    tried.push(found.why);
  }
  return { ok: false, why: tried.join('\n  ') };
}

function fromSystem() {
  const libDir = SYSTEM_LIB_DIRS.find((d) => existsSync(join(d, 'libtorch.so')) || existsSync(join(d, 'libtorch_cpu.so')));
  return describe('system', '/usr', '/usr/include', libDir ?? '/usr/lib');
}

export function findLibtorch() {
  if (process.env.LIBTORCH) {
    const found = fromEnv();
    if (found.ok) return found;
    return { ok: false, why: `embtune: LIBTORCH is set but unusable: ${found.why}\nPoint it at an unpacked libtorch (the folder with include/ and lib/), or unset it to search Python and the system.` };
  }
  const misses = [];
  for (const search of [fromPython, fromSystem]) {
    const found = search();
    if (found.ok) return found;
    misses.push(found.why);
  }
  const message = [
    'embtune: no libtorch found. Looked for:',
    '  LIBTORCH: not set',
    ...misses.map((m) => '  ' + m),
    'Fix one of these:',
    '  - Debian/Ubuntu: apt-get install -y libtorch-dev',
    '  - an official libtorch archive: unzip it and set LIBTORCH=/path/to/libtorch (the folder with include/ and lib/)',
    '  - a pip install of torch visible to python3 (its package folder has include/ and lib/)',
  ].join('\n');
  return { ok: false, why: message };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const found = findLibtorch();
  if (!found.ok) {
    console.error(found.why);
    process.exit(1);
  }
  console.log(JSON.stringify(found, null, 2));
}
