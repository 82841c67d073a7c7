// `trestle`: the operator's CLI. Tables for people, --json for scripts. Exit status:
// 0 all well, 1 a check or step failed, 2 the command line was wrong.
import { parseArgs } from 'node:util';
import packageJson from '../../package.json' with { type: 'json' };
import { supportedVersions } from '../cni/version.js';
import { defaultStateDir } from '../firewall/state.js';
import { defaultDataDir } from '../ipam/host-local-config.js';
import { diagnose } from './doctor.js';
import { installCniUsage, runInstallCni } from './install-cni.js';
import { addressesInUse, UsageError } from './ls.js';
import { defaultConfDir } from './networks.js';
import { renderTable } from './table.js';

const usage = `usage: trestle <command> [options]

commands:
  demo                 show Trestle at work in a sandbox of network namespaces (root)
  ls [network]         addresses in use, the pod (when a Kubernetes runtime named it)
                       and the host ports each container holds
                         --pod NS/NAME    only that pod's
  inspect ID|NS/POD    one attachment: addresses, veth, MACs, host ports, and each
                       nft element it owns, checked against the kernel
                         --data-dir DIR   IPAM store (default ${defaultDataDir})
                         --state-dir DIR  firewall state (default ${defaultStateDir})
  doctor               check this node (run under 'ip netns exec NS' for another namespace)
                         --conf-dir DIR   CNI configurations (default ${defaultConfDir})
  version              Trestle's version and the CNI versions it speaks
  daemon               the resident service the plugins forward calls to (socket:
                         $TRESTLE_SOCKET, default /run/trestle/trestled.sock)
  daemon status        whether a daemon answers, its pid, uptime, build and load
${installCniUsage}
  --json               machine-readable output (ls, inspect, doctor, version, daemon status)
`;

function print(text: string): void {
  process.stdout.write(text);
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      'data-dir': { type: 'string', default: defaultDataDir },
      'state-dir': { type: 'string', default: defaultStateDir },
      'conf-dir': { type: 'string', default: defaultConfDir },
      pod: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    print(usage);
    return command === undefined ? 2 : 0;
  }
  // Its own options: parsed there.
  if (command === 'install-cni') return runInstallCni(rest);
  const { values, positionals } = parse(rest);
  if (values.help) {
    print(usage);
    return 0;
  }
  switch (command) {
    case 'demo': {
      // Loaded only here: it pulls in the sandbox and its process library.
      const { runDemo } = await import('./demo.js');
      return runDemo();
    }
    case 'ls': {
      if (positionals.length > 1) throw new UsageError('ls takes at most one network name');
      const options: Parameters<typeof addressesInUse>[0] = { network: positionals[0], dataDir: values['data-dir'], stateDir: values['state-dir'] };
      if (values.pod !== undefined) options.pod = values.pod;
      const rows = addressesInUse(options);
      if (values.json) print(`${JSON.stringify(rows, null, 2)}\n`);
      else if (rows.length === 0) print(`no address in use${positionals[0] ? ` on network ${positionals[0]}` : ''} (store: ${values['data-dir']})\n`);
      else print(renderTable(['NETWORK', 'IP', 'CONTAINER', 'IFNAME', 'POD', 'PORTS'], rows.map((row) => [row.network, row.ip, row.containerId, row.ifname, row.pod ?? '', row.ports.join(', ')])));
      return 0;
    }
    case 'inspect': {
      if (positionals.length !== 1) throw new UsageError('inspect takes one container ID or NAMESPACE/POD');
      const { describeInspection, inspect } = await import('./inspect.js');
      const found = await inspect(positionals[0] as string, { dataDir: values['data-dir'], stateDir: values['state-dir'] });
      if (values.json) print(`${JSON.stringify(found, null, 2)}\n`);
      else if (found.length === 0) print(`no attachment of ${positionals[0]} is recorded (state: ${values['state-dir']})\n`);
      else print(found.map(describeInspection).join('\n'));
      return found.length > 0 ? 0 : 1;
    }
    case 'doctor': {
      const findings = await diagnose(values['conf-dir']);
      if (values.json) print(`${JSON.stringify(findings, null, 2)}\n`);
      else print(renderTable(['', 'CHECK', 'DETAIL'], findings.map((finding) => [finding.verdict.toUpperCase(), finding.check, finding.detail])));
      return findings.some((finding) => finding.verdict === 'fail') ? 1 : 0;
    }
    case 'daemon': {
      const { queryDaemon, runDaemon } = await import('./daemon.js');
      if (positionals[0] === undefined) return runDaemon();
      if (positionals[0] !== 'status') throw new UsageError(`unknown daemon command "${positionals[0]}"`);
      const answer = await queryDaemon();
      if (values.json) print(`${JSON.stringify(answer, null, 2)}\n`);
      else if (!answer.running) print(`no daemon answers on ${answer.socket}: ${answer.reason} (calls run one-shot)\n`);
      else {
        print(
          `daemon running on ${answer.socket}: pid ${answer.pid}, up ${answer.uptimeSeconds} s, version ${answer.version}, build ${answer.build ?? 'unknown'}, ${answer.served} calls served, ${answer.inFlight} in flight\n`,
        );
      }
      return answer.running ? 0 : 1;
    }
    case 'version': {
      const info = { trestle: packageJson.version, cniVersions: [...supportedVersions], node: process.version };
      if (values.json) print(`${JSON.stringify(info, null, 2)}\n`);
      else print(`trestle ${info.trestle} (CNI ${info.cniVersions.join(', ')}; Node.js ${info.node})\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

run(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    const usageProblem = error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`trestle: ${(error as Error).message}\n${usageProblem ? `\n${usage}` : ''}`);
    process.exitCode = usageProblem ? 2 : 1;
  },
);
