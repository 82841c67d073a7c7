// Podman (Debian's 4.x, CNI backend) running real containers on a Trestle network built
// from conf/podman/trestle-podman.conflist: podman loads the conflist, calls VERSION,
// ADD with `-p` as runtimeConfig.portMappings and `--ip` as CNI_ARGS IP=, and on
// `podman rm` DEL with its cached result as prevResult. Unlike the other tests this
// one configures the machine's root network namespace, because that is where podman
// puts the bridge; traffic only goes between the node and the containers, and
// test/helpers/podman.ts restores the machine in teardown.
import { existsSync } from 'node:fs';
import t from 'tap';
import { PodmanNode } from '../helpers/podman.js';
import { findProgram } from '../helpers/programs.js';

const podman = findProgram('podman');

if (podman === undefined) {
  t.comment('!'.repeat(76));
  t.comment('SKIPPED test/runtimes/podman.test.ts: podman not found on PATH or in /usr/sbin.');
  t.comment('Install it, with runc and conmon, by `scripts/install-deps.sh --tests`.');
  t.comment('!'.repeat(76));
  t.plan(0, 'podman not found');
} else {
  t.test('podman run on a Trestle network: address, host port, neighbour, clean removal', async (t) => {
    const node = await PodmanNode.create(t, podman);
    const subnet = new RegExp(`^${node.subnetPrefix.replace(/\./g, '\\.')}\\.\\d+$`);
    t.ok(await node.networkListed(), `podman lists ${node.network}: both plugins answer VERSION with cniVersion ${node.list.cniVersion}`);

    const web = await node.run('web', { publish: `${node.hostPort}:80` }, ['busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
    t.match(web.address, subnet, `the web container has an address from ${node.subnet} (${web.address})`);
    t.equal(node.reservations().get(web.address), web.id, "the IPAM store holds it under podman's container ID");

    t.equal(await node.fetchFromNode(`http://127.0.0.1:${node.hostPort}/`), node.page, `node -> 127.0.0.1:${node.hostPort} -> web:80 (podman -p)`);

    const requested = `${node.subnetPrefix}.200`;
    const client = await node.run('client', { ip: requested }, ['sleep', '600']);
    t.equal(client.address, requested, 'podman --ip reaches the plugins (CNI_ARGS IP=)');
    t.equal(await node.fetchIn(client, `http://${web.address}/`), node.page, 'the client container fetches the page from web by its address');
    t.ok(await node.pingIn(client, web.address), 'and pings it');

    const hostVeths = await node.hostVeths();
    t.equal(hostVeths.length, 2, `two host veths on ${node.bridge}`);
    t.ok((await node.elementsOfOurs()).length > 0, 'the containers have elements in nft table inet trestle (so the check below can see them)');
    t.equal(node.libcniCacheFiles().length, 2, "libcni cached both ADD results (what podman hands back as prevResult on DEL)");

    const removed = await node.podman(['rm', '--force', '--time', '0', web.id, client.id], { reject: false });
    t.equal(removed.exitCode, 0, `podman rm -f both containers${removed.exitCode === 0 ? '' : `: ${String(removed.stderr)}`}`);
    t.same([...node.reservations().keys()], [], 'no address is left in the IPAM store');
    t.same(await node.hostVeths(), [], `no host veth has ${node.bridge} as master`);
    t.same(await node.elementsOfOurs(), [], 'no element of theirs is left in nft table inet trestle');
    t.same(node.stateFiles(), [], "the plugins' stateDir holds nothing for them");
    t.same(node.libcniCacheFiles(), [], 'every DEL succeeded (libcni drops a cached result only then)');
    t.same(
      node.containers.filter((container) => existsSync(container.sandboxKey)).map((container) => container.sandboxKey),
      [],
      "podman removed the containers' namespaces",
    );
    t.equal(await node.fetchFromNode(`http://127.0.0.1:${node.hostPort}/`, 1), undefined, `${node.hostPort} no longer answers`);
    t.same(String((await node.podman(['ps', '-a', '-q'])).stdout).trim(), '', 'podman has no container left');
  });
}
