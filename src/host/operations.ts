import { HostError } from './errors.js';
import { Errno } from './netlink/errno.js';
import { withRouteSession, type RouteSession } from './netlink/route.js';
import { NetlinkError } from './netlink/socket.js';

// One change to links, addresses or routes, made by one or two rtnetlink requests.
export interface HostOperation {
  // Human words for error messages ("create veth pair veth1a2b3c4d/eth0").
  what: string;
  // Kernel errors that mean "already as wanted" (e.g. EEXIST when another ADD created
  // the shared bridge a moment earlier).
  tolerate?: readonly number[];
  // What a kernel error means for this operation, where its own text ("Exchange full")
  // would not tell a person.
  explain?: Readonly<Record<number, string>>;
  apply(session: RouteSession): void;
}

// Applies the operations in order, in `netns` when given (else in this process's
// namespace), through one netlink socket. The first failure that is not tolerated
// stops the batch and is raised naming the operation; returns the operations whose
// failure was tolerated.
export async function applyOperations(operations: readonly HostOperation[], netns?: string): Promise<HostOperation[]> {
  if (operations.length === 0) return [];
  return withRouteSession(netns, (session) => {
    const tolerated: HostOperation[] = [];
    for (const operation of operations) {
      try {
        operation.apply(session);
      } catch (error) {
        if (!(error instanceof NetlinkError)) throw error;
        if (operation.tolerate?.includes(error.errno)) {
          tolerated.push(operation);
          continue;
        }
        const explained = operation.explain?.[error.errno];
        const reason = explained === undefined ? error.reason : `${explained} (${error.reason})`;
        throw new HostError(`failed to ${operation.what}: ${reason}`, reason, error.errno === Errno.noDevice, operation.what);
      }
    }
    return tolerated;
  });
}

// A query's "no such object" as undefined; any other kernel error as a HostError.
export function lookup<T>(what: string, query: () => T): T | undefined {
  try {
    return query();
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === Errno.noDevice) return undefined;
    if (error instanceof NetlinkError) throw new HostError(`cannot ${what}: ${error.reason}`, error.reason);
    throw error;
  }
}
