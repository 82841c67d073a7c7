import { koffi, type Koffi, type KoffiLibrary } from './koffi.js';

// The C library calls that Node does not offer: netlink sockets and setns(2); and,
// bound only when a long-lived process first watches a directory, inotify(7).
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, length: number): number;
  send(fd: number, buffer: Buffer, length: number, flags: number): number;
  // send(2) on a worker thread of libuv's pool: resolves with its return value.
  sendInBackground(fd: number, buffer: Buffer, length: number, flags: number): Promise<number>;
  recv(fd: number, buffer: Buffer, length: number, flags: number): number;
  close(fd: number): number;
  setns(fd: number, type: number): number;
  ioctl(fd: number, request: number): number;
  strerror(errno: number): string;
  // Runs `work` with every signal held back on this thread (and delivered after it):
  // libnftables gives up a transaction whose answer a signal handler interrupted.
  withSignalsHeld<T>(work: () => T): T;
  errno(): number;
}

export interface Inotify {
  init1(flags: number): number;
  addWatch(fd: number, path: string, mask: number): number;
  removeWatch(fd: number, wd: number): number;
  read(fd: number, buffer: Buffer, length: number): number;
}

let loaded: { ffi: Koffi; library: KoffiLibrary } | undefined;

function cLibrary(): { ffi: Koffi; library: KoffiLibrary } {
  if (!loaded) {
    const ffi = koffi();
    loaded = { ffi, library: ffi.load('libc.so.6') };
  }
  return loaded;
}

let bound: Libc | undefined;

export function libc(): Libc {
  if (bound) return bound;
  const { ffi, library } = cLibrary();
  const socket = library.func('int socket(int, int, int)');
  const setsockopt = library.func('int setsockopt(int, int, int, const void *, uint32_t)');
  const send = library.func('long send(int, const void *, size_t, int)');
  const recv = library.func('long recv(int, void *, size_t, int)');
  const close = library.func('int close(int)');
  const setns = library.func('int setns(int, int)');
  const ioctl = library.func('int ioctl(int, unsigned long, ...)');
  const strerror = library.func('const char *strerror(int)');
  const sigmask = library.func('int pthread_sigmask(int, const void *, void *)');
  // sigset_t is 1024 bits in glibc; all set: every signal.
  const everySignal = Buffer.alloc(128, 0xff);
  const SIG_BLOCK = 0;
  const SIG_SETMASK = 2;
  bound = {
    socket: (domain, type, protocol) => socket(domain, type, protocol) as number,
    setsockopt: (fd, level, name, value, length) => setsockopt(fd, level, name, value, length) as number,
    send: (fd, buffer, length, flags) => Number(send(fd, buffer, length, flags)),
    sendInBackground: (fd, buffer, length, flags) =>
      new Promise((resolve, reject) => {
        (send as unknown as { async(...args: unknown[]): void }).async(fd, buffer, length, flags, (error: unknown, sent: unknown) => (error ? reject(error) : resolve(Number(sent))));
      }),
    recv: (fd, buffer, length, flags) => Number(recv(fd, buffer, length, flags)),
    close: (fd) => close(fd) as number,
    setns: (fd, type) => setns(fd, type) as number,
    ioctl: (fd, request) => ioctl(fd, request) as number,
    strerror: (errno) => strerror(errno) as string,
    withSignalsHeld: (work) => {
      const previous = Buffer.alloc(128);
      sigmask(SIG_BLOCK, everySignal, previous);
      try {
        return work();
      } finally {
        sigmask(SIG_SETMASK, previous, null);
      }
    },
    errno: () => ffi.errno(),
  };
  return bound;
}

let inotifyBound: Inotify | undefined;

// Apart from libc(): a one-shot plugin never watches, and each binding is start-up time.
export function inotify(): Inotify {
  if (inotifyBound) return inotifyBound;
  const { library } = cLibrary();
  const init1 = library.func('int inotify_init1(int)');
  const addWatch = library.func('int inotify_add_watch(int, const char *, uint32_t)');
  const removeWatch = library.func('int inotify_rm_watch(int, int)');
  const read = library.func('long read(int, void *, size_t)');
  inotifyBound = {
    init1: (flags) => init1(flags) as number,
    addWatch: (fd, path, mask) => addWatch(fd, path, mask) as number,
    removeWatch: (fd, wd) => removeWatch(fd, wd) as number,
    read: (fd, buffer, length) => Number(read(fd, buffer, length)),
  };
  return inotifyBound;
}
