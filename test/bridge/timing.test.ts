// Figures, not assertions: ADD and DEL p50 of trestle-bridge + trestle-host-local and
// of the reference bridge + host-local, measured in the same run and alternated so
// that both see the same machine load.
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { median } from '../helpers/bridge.js';

const runs = 30;
const warmUps = 2;
const version = '1.0.0';

t.test(`ADD/DEL p50 over ${runs} runs, trestle vs reference`, async (t) => {
  const sandbox = await Sandbox.create(t);
  const runner = sandbox.runner();
  const contenders = [
    {
      label: 'trestle-bridge + trestle-host-local',
      list: {
        cniVersion: version,
        name: `trestle-${sandbox.id}`,
        plugins: [
          {
            type: 'trestle-bridge',
            bridge: 'trestle0',
            isDefaultGateway: true,
            stateDir: sandbox.stateDir,
            ipam: { type: 'trestle-host-local', dataDir: sandbox.dataDir, ranges: [[{ subnet: '10.88.0.0/24' }]] },
          },
        ],
      },
    },
    {
      label: 'reference bridge + host-local',
      list: {
        cniVersion: version,
        name: `reference-${sandbox.id}`,
        plugins: [{ type: 'bridge', bridge: 'refbr0', isDefaultGateway: true, ipam: { type: 'host-local', dataDir: sandbox.dataDir, ranges: [[{ subnet: '10.89.0.0/24' }]] } }],
      },
    },
  ];
  const samples = contenders.map(() => ({ add: [] as number[], del: [] as number[] }));
  const attachments = [];
  for (const _ of contenders) attachments.push(sandbox.attachment(await sandbox.addContainer()));

  for (let run = 0; run < warmUps + runs; run++) {
    for (const [index, contender] of contenders.entries()) {
      const attachment = attachments[index]!;
      const addStart = performance.now();
      const result = runner.add(contender.list, attachment);
      const addEnd = performance.now();
      runner.del(contender.list, attachment, result);
      const delEnd = performance.now();
      if (run < warmUps) continue;
      samples[index]!.add.push(addEnd - addStart);
      samples[index]!.del.push(delEnd - addEnd);
    }
  }

  for (const [index, contender] of contenders.entries()) {
    const { add, del } = samples[index]!;
    t.comment(`${contender.label}: ADD p50 ${median(add).toFixed(1)} ms, DEL p50 ${median(del).toFixed(1)} ms (${runs} runs, cniVersion ${version})`);
  }
});
