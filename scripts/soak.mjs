// `make soak`: ADD/DEL cycles of the default chain (conf/10-trestle.conflist) in one
// sandbox, with seeded SIGKILLs of the plugins at random points, a GC every 100
// cycles, and a table of what is left after each GC. Not part of `make test`: it
// runs for minutes. Stops by itself and removes its sandbox, also on Ctrl-C.
//   node scripts/soak.mjs [--cycles 1000] [--seed N] [--lanes 4] [--kill-rate 0.3]
import { build } from 'esbuild';
import { toolBundle } from './bundle-options.mjs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: process.env.SOAK_CYCLES ?? '1000' },
    seed: { type: 'string', default: process.env.TRESTLE_SOAK_SEED ?? '1' },
    lanes: { type: 'string', default: '4' },
    'kill-rate': { type: 'string', default: '0.3' },
  },
});
const cycles = Number(values.cycles);
const seed = Number(values.seed);
const lanes = Number(values.lanes);
const killRate = Number(values['kill-rate']);
for (const [name, value] of [['cycles', cycles], ['seed', seed], ['lanes', lanes]]) {
  if (!Number.isSafeInteger(value) || value < (name === 'seed' ? 0 : 1)) throw new Error(`--${name} must be a positive integer`);
}
if (!(killRate >= 0 && killRate <= 1)) throw new Error('--kill-rate must be between 0 and 1');

// The fault helpers are TypeScript shared with test/faults: bundled once, as the
// benchmark is (dependencies stay in node_modules).
const bundle = join(repo, 'dist', 'soak.mjs');
await build({
  stdin: { contents: "export * from './test/helpers/faults.ts';\nexport { Sandbox } from './src/sandbox/sandbox.ts';\n", resolveDir: repo, loader: 'ts', sourcefile: 'soak-entry.ts' },
  outfile: bundle,
  ...toolBundle,
});
const faults = await import(pathToFileURL(bundle).href);
const { Random, Sandbox } = faults;

const batch = 100;
const random = new Random(seed);
// Where a kill may land, per plugin and command of the chain.
const killPoints = {
  'trestle-bridge ADD': ['timer', 'timer', 'ipam-lock', 'reservation-temp', 'firewall-lock', 'state-temp', 'nft-sending', 'nft-committed', 'netlink'],
  'trestle-portmap ADD': ['timer', 'timer', 'firewall-lock', 'state-temp', 'nft-sending', 'nft-committed'],
  'trestle-portmap DEL': ['timer', 'timer', 'firewall-lock', 'nft-sending', 'nft-committed'],
  'trestle-bridge DEL': ['timer', 'timer', 'ipam-lock', 'firewall-lock', 'nft-sending', 'nft-committed', 'netlink'],
};
// Which rtnetlink change a netlink kill lands after: a bridge ADD makes about seven
// (bridge, its address, the veth pair, the port's settings, the container's side), a
// DEL one (the veth).
const netlinkChanges = {
  ADD: 7,
  DEL: 1,
};

const totals = { cycles: 0, kills: 0, delFailures: 0, delGaveUp: 0 };
let sandbox;
let stopping = false;

async function cleanUp() {
  if (sandbox) await sandbox.destroy();
  sandbox = undefined;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    stopping = true;
    process.stderr.write(`\n${signal}: stopping after the cycles in flight\n`);
  });
}

function planKill() {
  if (!random.chance(killRate)) return undefined;
  const where = random.pick(Object.keys(killPoints));
  const kind = random.pick(killPoints[where]);
  const [plugin, command] = where.split(' ');
  return { plugin, command, kind, at: 0.05 + random.next() * 0.9, nth: 1 + Math.floor(random.next() * netlinkChanges[command]), netnsGone: random.chance(0.3) };
}

// One container's life: ADD (perhaps killed), then DEL as the runtime does it,
// retried up to three times.
async function cycle(list, lane, number) {
  const plan = planKill();
  const container = await sandbox.addContainer();
  const attachment = sandbox.attachment(container, { capabilities: { portMappings: faults.hostPorts(31000 + lane) } });
  const [bridgeEntry, portmapEntry] = list.plugins;
  let cached;
  let prevResult;
  let addFailed = false;
  const killed = async (type, command, config) => {
    const trigger =
      plan.kind === 'timer' ? { kind: 'timer', ms: Math.max(1, plan.at * faults.typicalDuration(type, command)) } : plan.kind === 'netlink' ? { kind: 'netlink', nth: plan.nth } : { kind: plan.kind };
    const report = await faults.runAndKill(sandbox, list, { type, command, config, attachment }, trigger);
    if (report.killed) totals.kills += 1;
    return report.outcome;
  };
  for (const entry of [bridgeEntry, portmapEntry]) {
    const type = entry.type;
    const config = faults.pluginInput(list, entry, attachment, prevResult);
    const outcome = plan?.command === 'ADD' && plan.plugin === type ? await killed(type, 'ADD', config) : await faults.runPlugin(sandbox, { type, command: 'ADD', config, attachment });
    if (!outcome || outcome.exitCode !== 0) {
      addFailed = true;
      break;
    }
    prevResult = outcome.json;
  }
  if (!addFailed) cached = prevResult;
  if (plan?.command === 'DEL' && cached) {
    for (const entry of [portmapEntry, bridgeEntry]) {
      const config = faults.pluginInput(list, entry, attachment, cached);
      if (entry.type === plan.plugin) {
        await killed(entry.type, 'DEL', config);
        break;
      }
      await faults.runPlugin(sandbox, { type: entry.type, command: 'DEL', config, attachment });
    }
  }
  if (plan?.netnsGone) await faults.deleteNamespace(container);
  for (let attempt = 1; ; attempt++) {
    try {
      await faults.chainDel(sandbox, list, attachment, cached);
      break;
    } catch (error) {
      totals.delFailures += 1;
      if (attempt === 3) {
        totals.delGaveUp += 1;
        process.stderr.write(`cycle ${number}: DEL failed three times: ${error.message}\n`);
        break;
      }
    }
  }
  await faults.deleteNamespace(container);
}

function row(cells) {
  return cells.map((cell, index) => String(cell).padStart(index === 0 ? 7 : 10)).join(' ');
}

async function counts(list) {
  const state = await faults.leftovers(sandbox, list);
  const old = faults.tempFiles(sandbox).length - faults.youngTempFiles(sandbox, 60).length;
  return [state.reservations.length, state.veths.length, state.elements.length, state.stateFiles.length, state.tempFiles.length, old];
}

const started = Date.now();
let exitCode = 0;
try {
  sandbox = await Sandbox.create();
  const list = faults.defaultChain(sandbox);
  process.stdout.write(`soak: ${cycles} cycles of ${list.plugins.map((plugin) => plugin.type).join(' + ')}, ${lanes} at a time, kill rate ${killRate}, seed ${seed} (TRESTLE_SOAK_SEED=${seed} repeats the plan)\n`);
  process.stdout.write(`leftovers are counted after the GC that ends each ${batch} cycles; temporary files younger than 60 s are not yet GC's to remove\n\n`);
  process.stdout.write(`${row(['cycles', 'kills', 'DEL fails', 'reserved', 'veths', 'elements', 'state', 'temp', 'temp >60s', 'seconds'])}\n`);
  let next = 0;
  while (next < cycles && !stopping) {
    const end = Math.min(cycles, next + batch);
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        while (next < end && !stopping) {
          const number = next++;
          await cycle(list, lane, number);
          totals.cycles += 1;
        }
      }),
    );
    try {
      await faults.chainGc(sandbox, list, []);
    } catch (error) {
      process.stderr.write(`GC failed: ${error.message}\n`);
      exitCode = 1;
    }
    process.stdout.write(`${row([totals.cycles, totals.kills, totals.delFailures, ...(await counts(list)), ((Date.now() - started) / 1000).toFixed(0)])}\n`);
  }
  // Time would take every temporary file past GC's grace period: one more GC then.
  faults.ageTempFiles(sandbox);
  try {
    await faults.chainGc(sandbox, list, []);
  } catch (error) {
    process.stderr.write(`GC failed: ${error.message}\n`);
    exitCode = 1;
  }
  const final = await counts(list);
  process.stdout.write(`${row(['final', totals.kills, totals.delFailures, ...final, ((Date.now() - started) / 1000).toFixed(0)])}  (temporary files aged past the grace period, then GC)\n`);
  if (final.some((count) => count > 0) || totals.delGaveUp > 0) exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
