// Groups violations into failure classes (what was changed in the input × what went
// wrong), so that one defect hit by a hundred cases is reported once, with counts,
// a first example and, where shrinking ran, the smallest case that still shows it.
import type { FuzzCase } from './cases.js';
import type { CaseReport } from './fuzzer.js';

export interface FailureClass {
  signature: string;
  count: number;
  plugins: Set<string>;
  commands: Set<string>;
  // Index of the first case of the run that showed it (fast-check's path to replay it).
  firstIndex: number;
  first: CaseReport;
  detail: string;
}

export function summary(failures: Failures): string {
  return [...failures.answers].sort((a, b) => b[1] - a[1]).map(([answer, count]) => `${answer}: ${count}`).join(', ');
}

export function signatureOf(fuzzCase: FuzzCase, kind: string): string {
  return `${kind} | input: ${fuzzCase.mutation}`;
}

export class Failures {
  readonly classes = new Map<string, FailureClass>();
  // How the cases were answered ("success", "code 7", "timeout"), to show what a run covered.
  readonly answers = new Map<string, number>();
  cases = 0;
  failedCases = 0;

  record(index: number, report: CaseReport): void {
    this.cases += 1;
    const answer = report.answer === 'timeout' ? 'timeout' : report.answer.exitCode === 0 ? 'success' : `code ${/"code":(\d+)/.exec(report.answer.stdout)?.[1] ?? '?'}`;
    this.answers.set(answer, (this.answers.get(answer) ?? 0) + 1);
    if (report.violations.length > 0) this.failedCases += 1;
    for (const violation of report.violations) {
      const signature = signatureOf(report.fuzzCase, violation.kind);
      const known = this.classes.get(signature);
      if (known) {
        known.count += 1;
        known.plugins.add(report.fuzzCase.plugin);
        known.commands.add(report.fuzzCase.command);
      } else {
        this.classes.set(signature, { signature, count: 1, plugins: new Set([report.fuzzCase.plugin]), commands: new Set([report.fuzzCase.command]), firstIndex: index, first: report, detail: violation.detail });
      }
    }
  }
}

function clip(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length)}… (${text.length} chars)` : text;
}

// A case as a reader reproduces it by hand: the plugin, the environment, stdin.
export function describeCase(fuzzCase: FuzzCase): string {
  const env = Object.entries(fuzzCase.env)
    .map(([name, value]) => `${name}=${clip(JSON.stringify(value), 120)}`)
    .join(' ');
  const stdin = fuzzCase.binary ? `bytes ${JSON.stringify(Buffer.from(fuzzCase.stdin, 'latin1').toString('hex').slice(0, 200))}` : clip(fuzzCase.stdin, 1200);
  return `${fuzzCase.plugin} (expect ${fuzzCase.expect}) ${env}\n  stdin: ${stdin}`;
}

export function describeClass(entry: FailureClass): string {
  const answer = entry.first.answer === 'timeout' ? 'timeout' : `exit ${entry.first.answer.exitCode}: ${clip(entry.first.answer.stdout.trim(), 400)}`;
  return [
    `${entry.count}× ${entry.signature} [${[...entry.plugins].join(', ')}; ${[...entry.commands].join(', ')}]`,
    `  first case (#${entry.firstIndex}): ${describeCase(entry.first.fuzzCase)}`,
    `  answer: ${answer}`,
    `  detail: ${clip(entry.detail, 800)}`,
  ].join('\n');
}
