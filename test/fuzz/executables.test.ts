// A share of the generated calls through the real executables in bin/, as a runtime
// starts them (one process per call, in the sandbox node): the exit status and the
// exact bytes on stdout, and what only a process has: empty stdin, and stdin that
// cannot be read (a directory). FUZZ_SEED as in in-process.test.ts.
import fc from 'fast-check';
import t from 'tap';
import { caseArbitrary, commands, pluginTypes, type FuzzCase } from './lib/cases.js';
import { Fuzzer } from './lib/fuzzer.js';
import { describeClass, Failures, summary } from './lib/report.js';

const seed = Number(process.env['FUZZ_SEED'] ?? 20261130) + 1;
const numRuns = Number(process.env['FUZZ_EXEC_RUNS'] ?? 100);

t.test(`${numRuns} generated calls and odd stdin through bin/ (seed ${seed})`, async (t) => {
  const fuzzer = await Fuzzer.create(t);
  const ctx = fuzzer.context;
  const failures = new Failures();
  let index = 0;
  const started = Date.now();

  // Every plugin and command with no stdin at all and with a directory as stdin
  // (read fails with EISDIR): an error with a code, VERSION may answer either way.
  for (const plugin of pluginTypes) {
    for (const command of commands) {
      const env = { CNI_COMMAND: command, CNI_CONTAINERID: `fz-${ctx.id}`, CNI_NETNS: ctx.containers[0] as string, CNI_IFNAME: 'eth0', CNI_PATH: ctx.cniPath };
      const empty: FuzzCase = { plugin, command, mutation: 'stdin empty', expect: command === 'VERSION' ? 'success' : 'failure', env, stdin: '', container: ctx.containers[0] as string };
      failures.record(index++, await fuzzer.run(empty, 'process'));
      const unreadable: FuzzCase = { ...empty, mutation: 'stdin unreadable (a directory)', expect: command === 'VERSION' ? 'either' : 'failure' };
      failures.record(index++, await fuzzer.run(unreadable, 'process', ctx.sandboxDir));
    }
  }

  await fc.check(
    fc.asyncProperty(caseArbitrary(ctx), async (fuzzCase) => {
      failures.record(index++, await fuzzer.run(fuzzCase, 'process'));
      return true;
    }),
    { seed, numRuns },
  );
  t.comment(`${failures.cases} executable runs in ${Date.now() - started} ms, ${failures.failedCases} with violations`);
  t.comment(`answers: ${summary(failures)}`);
  t.equal(failures.cases, pluginTypes.length * commands.length * 2 + numRuns, 'every case ran');
  for (const entry of failures.classes.values()) t.fail(describeClass(entry));
});
