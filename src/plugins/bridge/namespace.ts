import { CniError, ErrorCode } from '../../cni/errors.js';
import { namespaceKind } from '../../host/netns.js';
import { quote } from '../../util/quote.js';
import { hostFailure } from '../failures.js';

// The node's own namespace is never a container's: configuring it would put eth0 and
// a default route on the node, and deleting CNI_IFNAME there could take the shared
// bridge (or the uplink) with it.
export function refuseNodeNamespace(netns: string): void {
  if (netns !== '' && asHostFailure(() => namespaceKind(netns)) === 'own') throw nodeNamespace(netns);
}

// ADD and CHECK work inside the container's namespace, so it must exist.
export function requireContainerNamespace(netns: string): void {
  const kind = netns === '' ? 'none' : asHostFailure(() => namespaceKind(netns));
  if (kind === 'own') throw nodeNamespace(netns);
  if (kind === 'none') throw new CniError(ErrorCode.UnknownContainer, `network namespace ${quote(netns)} does not exist or is not a network namespace`);
}

function nodeNamespace(netns: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${quote(netns)} is the node's own network namespace, not a container's`);
}

// The checks need the native module: a node where it cannot load gets its error (103).
function asHostFailure<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    return hostFailure(error);
  }
}
