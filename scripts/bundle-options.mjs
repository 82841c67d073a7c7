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
  minify: true,
  legalComments: 'none',
  loader: { '.conflist': 'json' },
  logLevel: 'error',
};
