// Builds the libtorch addon with node-gyp (run by `npm install`).
// Writes native/libtorch.gypi from what find-libtorch.mjs found, points node-gyp at the Node
// headers of the running node (never downloads them), and reports the build time.
import { existsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const torch = findLibtorch();
if (!torch.ok) {
  console.error(torch.why);
  process.exit(1);
}
console.error(`embtune: building against libtorch ${torch.version} from ${torch.source}: ${torch.root}${torch.cuda ? ' (CUDA)' : ''}`);

const libs = [torch.hasTorchLib ? '-ltorch' : '', '-ltorch_cpu', '-lc10'];
// torch.distributed (native/src/distributed_ops.cc) compiles against ProcessGroupGloo only when
// Gloo's headers are there (Debian: libgloo-dev; libtorch itself exports the symbols). Without
// them the addon still builds and loads, and its distributed functions say what to install.
// EMBTUNE_GLOO=0 builds without it even where the headers exist.
const glooInclude = [...torch.includeDirs, join(torch.root, 'include'), '/usr/include', '/usr/local/include'].find((d) =>
  existsSync(join(d, 'gloo/config.h')),
);
const gloo = process.env.EMBTUNE_GLOO !== '0' && glooInclude !== undefined;
console.error(
  gloo
    ? `embtune: torch.distributed with Gloo (headers in ${glooInclude}/gloo)`
    : `embtune: torch.distributed off: ${process.env.EMBTUNE_GLOO === '0' ? 'EMBTUNE_GLOO=0' : 'no Gloo headers (apt-get install -y libgloo-dev)'}`,
);
if (torch.cuda) libs.push('-ltorch_cuda', '-lc10_cuda');
const gypi = {
  variables: {
    libtorch_root: torch.root,
    libtorch_version: torch.version ?? 'unknown',
    libtorch_cuda: torch.cuda ? 1 : 0,
  },
  target_defaults: {
    include_dirs: torch.includeDirs,
    libraries: [`-L${torch.libDir}`, `-Wl,-rpath,${torch.libDir}`, '-Wl,--no-as-needed', ...libs.filter(Boolean), '-Wl,--as-needed'],
    defines: [`EMBTUNE_LIBTORCH_ROOT="${torch.root}"`, ...(torch.cuda ? ['EMBTUNE_CUDA=1'] : []), ...(gloo ? ['USE_C10D_GLOO'] : [])],
  },
};
writeFileSync(join(here, 'libtorch.gypi'), JSON.stringify(gypi, null, 2) + '\n');

/** The Node headers that ship with this node (…/include/node), so node-gyp has nothing to download. */
function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, 'include/node/node_api.h')));
}

/** npm's own node-gyp (npm passes it to install scripts); else the copy bundled beside this node's npm. */
function nodeGyp() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  const bundled = join(dirname(dirname(process.execPath)), 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  return existsSync(bundled) ? bundled : 'node-gyp';
}

const gypBin = nodeGyp();
const dir = nodeDir();
const args = ['rebuild', `--directory=${here}`, `--jobs=${process.env.JOBS ?? 'max'}`];
if (dir) args.push(`--nodedir=${dir}`);
else console.error('embtune: warning: no Node headers found beside node; node-gyp may try to download them');

const started = Date.now();
const useNode = gypBin.endsWith('.js');
const result = spawnSync(useNode ? process.execPath : gypBin, useNode ? [gypBin, ...args] : args, { stdio: 'inherit' });
if (result.error) console.error(`embtune: could not run node-gyp (${gypBin}): ${result.error.message}`);
if (result.status !== 0) {
  console.error(`embtune: the native build failed (node-gyp exit ${result.status ?? result.signal}). libtorch: ${torch.root}`);
  process.exit(result.status ?? 1);
}
console.error(`embtune: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
