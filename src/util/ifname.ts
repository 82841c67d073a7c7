// The interface names Trestle accepts, everywhere a name comes from a caller
// (CNI_IFNAME, "bridge", a previous result's host interface).
//
// The kernel takes almost any byte (not "/", ":", whitespace; "." and ".." are
// refused; at most 15 bytes, IFNAMSIZ - 1), but the names also travel through
// `ip -batch`, which splits lines on whitespace and treats "#", quotes and "\"
// specially, and into file names, sysctl paths and nft comments. So Trestle takes
// a narrower, byte-safe set:
// - ASCII letters, digits and "_ . - @ + , =", at most 15 bytes (all of them one byte);
// - not "%": the kernel reads "fz%d" as a template and creates "fz0" instead;
// - not "." or "..", nor "all" or "default" (/proc/sys/net/*/conf/ uses those two
//   for the whole namespace; the kernel refuses them as link names too);
// - not "if" followed by a number: when no link has that name, `ip` reads it as
//   an interface index ("if3" = the link with index 3), so a DEL of a name that is
//   gone would act on another link.
// Names that are `ip` keywords ("up", "dev", "name", "help"...) are valid: every
// builder puts a name after "dev" or "name", where `ip` takes the next word as is.
export const maxInterfaceNameBytes = 15;

const allowed = /^[A-Za-z0-9_.@+,=-]+$/;

export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (Buffer.byteLength(name, 'utf8') > maxInterfaceNameBytes) return `is longer than ${maxInterfaceNameBytes} bytes`;
  if (!allowed.test(name)) return 'may contain only ASCII letters, digits and "_", ".", "-", "@", "+", ",", "="';
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  if (name === 'all' || name === 'default') return `may not be "${name}" (reserved by the kernel)`;
  if (/^if[+-]?[0-9]/.test(name)) return 'may not be "if" followed by a number (ip reads that as an interface index)';
  return undefined;
}
