// What a CNI answer must look like, whatever the input: one JSON object on stdout,
// an error with a spec code and a non-zero exit status, or the success shape of the
// command; never JavaScript's own words. A violation is a stable `kind` (to group
// failures by) and a `detail` (this case's evidence).
import type { FuzzCase } from './cases.js';

export interface Violation {
  kind: string;
  detail: string;
}

export interface PluginAnswer {
  stdout: string;
  exitCode: number;
}

// The spec's well-known codes and Trestle's own (src/cni/errors.ts), 999 excluded.
const allowedCodes = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102, 103, 104]);
const errorKeys = new Set(['cniVersion', 'code', 'msg', 'details']);
const javascriptText = /TypeError|ReferenceError|RangeError|SyntaxError|EvalError|AggregateError|\bundefined\b|\bNaN\b|\[object Object\]|Cannot read propert|Cannot set propert|is not a function|is not iterable|is not defined|Maximum call stack|ERR_[A-Z_]{3,}/;
const stackTrace = /\n\s+at \S|\bat [^\n]*\((?:node:|\/)[^)]*:\d+:\d+\)|\.(?:ts|js|cjs|mjs):\d+:\d+/;
// Item 19 of issue 9: an error must not echo a 10 kB value back.
const maxErrorBytes = 4096;

function clip(text: string, length = 300): string {
  return text.length > length ? `${text.slice(0, length)}… (${text.length} chars)` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// The successful ADD must describe what the call asked for.
function addResultProblems(fuzzCase: FuzzCase, result: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (typeof result['cniVersion'] !== 'string') problems.push('no cniVersion');
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(fuzzCase.stdin) as Record<string, unknown>;
  } catch {
    return problems;
  }
  const version = String(config['cniVersion'] ?? '0.1.0');
  if (!/^0\.[12]\./.test(version)) {
    if (!Array.isArray(result['ips'])) problems.push('no "ips" list');
    if (fuzzCase.plugin === 'trestle-bridge') {
      const interfaces = Array.isArray(result['interfaces']) ? (result['interfaces'] as Array<Record<string, unknown>>) : [];
      const bridge = config['bridge'] ?? 'cni0';
      if (!interfaces.some((entry) => entry['name'] === bridge && entry['sandbox'] === undefined)) problems.push(`no bridge interface named ${JSON.stringify(bridge)}`);
      const ifname = fuzzCase.env['CNI_IFNAME'];
      if (!interfaces.some((entry) => entry['name'] === ifname && entry['sandbox'] === fuzzCase.env['CNI_NETNS'])) problems.push(`no container interface named ${JSON.stringify(ifname)} in ${fuzzCase.env['CNI_NETNS']}`);
    }
  }
  return problems;
}

export function checkAnswer(fuzzCase: FuzzCase, answer: PluginAnswer): Violation[] {
  const violations: Violation[] = [];
  const evidence = `exit ${answer.exitCode}, stdout ${clip(JSON.stringify(answer.stdout))}`;
  const add = (kind: string, detail = evidence) => violations.push({ kind, detail });
  if (javascriptText.test(answer.stdout)) add('JavaScript text in the answer');
  if (stackTrace.test(answer.stdout)) add('stack trace in the answer');

  if (answer.stdout === '') {
    if (answer.exitCode !== 0) add('failure with empty stdout');
    else if (fuzzCase.command === 'ADD' || fuzzCase.command === 'VERSION') add(`${fuzzCase.command} success with empty stdout`);
    if (answer.exitCode === 0 && fuzzCase.expect === 'failure') add('expected failure, got success');
    return violations;
  }
  // One JSON text and one newline: a runtime reads stdout whole.
  if (!answer.stdout.endsWith('\n') || answer.stdout.slice(0, -1).includes('\n')) add('stdout is not one line ending in a newline');
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.stdout);
  } catch {
    add('stdout is not one JSON object');
    return violations;
  }
  if (!isObject(parsed)) {
    add('stdout is not one JSON object');
    return violations;
  }
  if (answer.exitCode !== 0) {
    const code = parsed['code'];
    if (typeof code !== 'number') add('error without a numeric code');
    else if (!allowedCodes.has(code)) add(`error code ${code}`);
    if (typeof parsed['msg'] !== 'string' || parsed['msg'] === '') add('error without a message');
    if (typeof parsed['cniVersion'] !== 'string') add('error without cniVersion');
    if (parsed['details'] !== undefined && typeof parsed['details'] !== 'string') add('error details not a string');
    const extra = Object.keys(parsed).filter((name) => !errorKeys.has(name));
    if (extra.length > 0) add(`error with extra keys ${extra.join(',')}`);
    if (Buffer.byteLength(answer.stdout) > maxErrorBytes) add(`error answer over ${maxErrorBytes} bytes`, `${answer.stdout.length} chars: ${clip(answer.stdout, 200)}`);
    if (fuzzCase.expect === 'success') add(`expected success, got code ${String(code)}`, clip(String(parsed['msg']), 500));
    return violations;
  }
  if ('code' in parsed) add('exit status 0 with an error object');
  if (fuzzCase.expect === 'failure') add('expected failure, got success');
  switch (fuzzCase.command) {
    case 'VERSION':
      if (typeof parsed['cniVersion'] !== 'string' || !Array.isArray(parsed['supportedVersions'])) add('VERSION answer malformed');
      break;
    case 'ADD':
      for (const problem of addResultProblems(fuzzCase, parsed)) add(`ADD result: ${problem.replace(/ named .*/, ' missing')}`, `${problem}; ${evidence}`);
      break;
    default:
      add(`${fuzzCase.command} success with output on stdout`);
  }
  return violations;
}
