// esbuild options shared by every bundle of the programs (bin/ launchers and the
// single executable): one CommonJS file each, since a CommonJS entry starts sooner
// than an ES module and nothing is resolved from node_modules at run time.
export const programBundle = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  // Less to parse at every start; stack traces only ever reach stderr.
  // TRESTLE_UNMINIFIED=1 keeps the names, for reading a CPU profile of the daemon
  // (node --cpu-prof): how the per-call costs of issue 11 were found.
  minify: process.env.TRESTLE_UNMINIFIED === undefined,
  legalComments: 'none',
  loader: { '.conflist': 'json' },
  // proper-lockfile reaches fs through graceful-fs, which queues calls that hit EMFILE
  // and patches fs at load time: nothing a process making a dozen fs calls needs, and
  // loading it cost ~4 ms of every IPAM call (11.2 -> 7.2 ms to load proper-lockfile).
  alias: { 'graceful-fs': 'node:fs' },
  logLevel: 'error',
};

// The developer tools that run from the repository (bench, soak): one ES module each,
// with their dependencies left in node_modules, since they start once per run.
export const toolBundle = {
  bundle: true,
  packages: 'external',
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
};
