// conf/kubernetes/*.yaml parse (no cluster here), and what they name agrees with the
// code: the image make image builds, install-cni's default directories mounted from
// the node's CNI directories, the daemon's socket, firewall state and IPAM store on
// the node's paths, and RBAC that allows reading nodes and nothing else.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { defaultCniBinDir, defaultCniConfDir } from '../../src/cli/install-cni.js';
import { defaultSocketPath } from '../../src/daemon/wire.js';
import { defaultStateDir } from '../../src/firewall/state.js';
import { defaultDataDir } from '../../src/ipam/host-local-config.js';
import { repoRoot } from '../../src/sandbox/sandbox.js';

type Json = Record<string, any>;
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

function load(name: string): Json[] {
  const documents = parseAllDocuments(readFileSync(join(repoRoot, 'conf/kubernetes', name), 'utf8'));
  if (!Array.isArray(documents)) throw new Error(`${name} is empty`);
  for (const document of documents) if (document.errors.length > 0) throw new Error(`${name}: ${document.errors.map(String).join('; ')}`);
  return documents.map((document) => document.toJS() as Json);
}

// The node path a container path is mounted from.
function hostPathOf(pod: Json, container: Json, mountPath: string): string | undefined {
  const mount = (container['volumeMounts'] as Json[]).find((entry) => entry['mountPath'] === mountPath);
  const volume = (pod['volumes'] as Json[]).find((entry) => entry['name'] === mount?.['name']);
  return volume?.['hostPath']?.['path'];
}

t.test('trestle.yaml: a DaemonSet with install-cni and the daemon, on the paths the code uses', async (t) => {
  const documents = load('trestle.yaml');
  t.same(documents.map((document) => document['kind']), ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet']);
  const daemonSet = documents[3] as Json;
  t.equal(daemonSet['apiVersion'], 'apps/v1');
  t.equal(daemonSet['metadata']['namespace'], 'kube-system');
  t.same(daemonSet['spec']['selector']['matchLabels'], daemonSet['spec']['template']['metadata']['labels'], 'the selector matches the pods');
  const pod = daemonSet['spec']['template']['spec'] as Json;
  t.equal(pod['hostNetwork'], true, 'the node network');
  t.same(pod['tolerations'], [{ operator: 'Exists' }], 'every node, not-ready ones included');
  t.equal(pod['serviceAccountName'], documents[0]?.['metadata']['name']);

  const [install] = pod['initContainers'] as Json[];
  const [daemon] = pod['containers'] as Json[];
  if (install === undefined || daemon === undefined) throw new Error('no init container or no container');
  for (const container of [install, daemon]) {
    t.equal(container['image'], `localhost/trestle:${version}`, `${container['name']} runs the image make image builds`);
    t.equal(container['imagePullPolicy'], 'Never', 'loaded onto the nodes, never pulled');
    t.notOk(container['command'], 'the image entry point (trestle) with args');
  }

  t.same(install['args'], ['install-cni'], 'the init container runs install-cni with its defaults');
  t.equal(hostPathOf(pod, install, defaultCniBinDir), '/opt/cni/bin', `${defaultCniBinDir} is the node's /opt/cni/bin`);
  t.equal(hostPathOf(pod, install, defaultCniConfDir), '/etc/cni/net.d', `${defaultCniConfDir} is the node's /etc/cni/net.d`);
  t.same(install['env'], [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }], 'NODE_NAME from the downward API');

  t.same(daemon['args'], ['daemon']);
  t.equal(daemon['securityContext']['privileged'], true, 'links, namespaces, nftables');
  t.notOk((daemon['env'] as Json[] | undefined)?.some((entry) => entry['name'] === 'TRESTLE_SOCKET'), 'the default socket, as the clients on the node use');
  t.equal(dirname(defaultSocketPath), defaultStateDir, 'socket and firewall state share one directory');
  t.equal(hostPathOf(pod, daemon, defaultStateDir), defaultStateDir, `${defaultStateDir} is the node's`);
  t.equal(hostPathOf(pod, daemon, defaultDataDir), defaultDataDir, `the IPAM store ${defaultDataDir} is the node's`);
  t.equal(hostPathOf(pod, daemon, '/opt/cni/bin'), '/opt/cni/bin', "the IPAM plugin at the caller's CNI_PATH");
  t.equal(hostPathOf(pod, daemon, '/run/netns'), '/run/netns', "pods' namespaces");
  const netns = (daemon['volumeMounts'] as Json[]).find((mount) => mount['mountPath'] === '/run/netns');
  t.equal(netns?.['mountPropagation'], 'HostToContainer', 'namespaces mounted after the daemon started are seen');
  for (const volume of pod['volumes'] as Json[]) t.equal(volume['hostPath']?.['type'], 'DirectoryOrCreate', `${volume['name']}: a hostPath directory`);

  const [role, binding] = [documents[1] as Json, documents[2] as Json];
  t.same(role['rules'], [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }], 'RBAC: get nodes, nothing else');
  t.same(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role['metadata']['name'] });
  t.same(binding['subjects'], [{ kind: 'ServiceAccount', name: 'trestle', namespace: 'kube-system' }]);
});

t.test('kind.yaml: a cluster without kindnet, with node CIDR allocation', async (t) => {
  const [cluster] = load('kind.yaml');
  t.equal(cluster?.['apiVersion'], 'kind.x-k8s.io/v1alpha4');
  t.equal(cluster?.['networking']['disableDefaultCNI'], true);
  t.match(cluster?.['networking']['podSubnet'], /^\d+\.\d+\.\d+\.\d+\/\d+$/);
});
