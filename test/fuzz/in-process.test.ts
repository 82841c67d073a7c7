// Generated bad input against all three plugins and all six commands, through
// handleRequest in a worker inside the sandbox node (the executables' own path,
// without a process start per case): every answer well formed, in time, and the
// node as it was. fast-check generates the cases (seeded: a run is reproducible)
// and shrinks the first case of each failure class to the smallest that still fails.
// FUZZ_SEED replays another seed, FUZZ_RUNS changes the number of cases.
import fc from 'fast-check';
import t from 'tap';
import { caseArbitrary } from './lib/cases.js';
import { Fuzzer } from './lib/fuzzer.js';
import { describeCase, describeClass, Failures, signatureOf, summary } from './lib/report.js';

const seed = Number(process.env['FUZZ_SEED'] ?? 20261130);
const numRuns = Number(process.env['FUZZ_RUNS'] ?? 1000);
// Shrinking replays a failure many times: bounded per class and in all.
const shrinkClasses = Number(process.env['FUZZ_SHRINK_CLASSES'] ?? 6);
const shrinkMsPerClass = 4000;

t.test(`${numRuns} generated calls in the node namespace (seed ${seed})`, async (t) => {
  t.comment(`seed ${seed}: FUZZ_SEED=${seed} replays this run`);
  const fuzzer = await Fuzzer.create(t);
  const cases = caseArbitrary(fuzzer.context);
  const failures = new Failures();
  const started = Date.now();
  let index = 0;
  // Every case runs (the property never fails here) so that one defect does not hide
  // the others; the failures are shrunk afterwards, by replaying their paths.
  const run = await fc.check(
    fc.asyncProperty(cases, async (fuzzCase) => {
      failures.record(index, await fuzzer.run(fuzzCase));
      index += 1;
      return true;
    }),
    { seed, numRuns },
  );
  t.notOk(run.failed, `the run itself completed: ${run.errorInstance ? String(run.errorInstance) : 'ok'}`);
  t.comment(`${failures.cases} cases in ${Date.now() - started} ms, ${failures.failedCases} with violations, ${failures.classes.size} failure classes, ${fuzzer.rebuilds} node rebuilds`);
  t.comment(`answers: ${summary(failures)}`);
  t.ok(failures.cases >= Math.min(numRuns, 1000), `at least ${Math.min(numRuns, 1000)} cases ran`);

  let shrunk = 0;
  for (const entry of failures.classes.values()) {
    let smallest = '';
    if (shrunk < shrinkClasses) {
      shrunk += 1;
      const target = entry.signature;
      const details = await fc.check(
        fc.asyncProperty(cases, async (fuzzCase) => !(await fuzzer.run(fuzzCase)).violations.some((violation) => signatureOf(fuzzCase, violation.kind) === target)),
        { seed, path: String(entry.firstIndex), numRuns: 1, interruptAfterTimeLimit: shrinkMsPerClass },
      );
      smallest = details.failed && details.counterexample
        ? `\n  smallest (FUZZ_SEED=${seed}, path ${details.counterexamplePath}, ${details.numShrinks} shrinks): ${describeCase(details.counterexample[0])}`
        : '\n  (did not fail again on replay: depends on what ran before it)';
    }
    t.fail(`${describeClass(entry)}${smallest}`);
  }
});
