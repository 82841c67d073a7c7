// The kernel's error numbers that callers of the netlink layer tell apart.
export const Errno = {
  noEntry: 2,
  exists: 17,
  noDevice: 19,
  exchangeFull: 54,
  familyNotSupported: 97,
  addressNotAvailable: 99,
} as const;
