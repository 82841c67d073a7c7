import { closeSync, openSync } from 'node:fs';
import { HostError } from '../errors.js';
import { libc, type Libc } from '../native/libc.js';
import { Flags, MessageType, decodeError, decodeMessages, encodeMessage, type Message } from './message.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;
const CLONE_NEWNET = 0x40000000;
const EINTR = 4;
// Set on the messages of a dump that the kernel had to restart (the table changed
// while it was being read): the answer may miss or repeat an entry.
const dumpInterrupted = 0x10;
// Large enough for any datagram the kernel sends on a dump (it sizes them to at most
// 32 KiB), so nothing is ever truncated.
const receiveSize = 64 * 1024;

// The kernel refused a request: errno and its own words.
export class NetlinkError extends Error {
  constructor(
    readonly errno: number,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'NetlinkError';
  }
}

function failure(c: Libc, errno: number, explanation?: string): NetlinkError {
  const words = c.strerror(errno);
  return new NetlinkError(errno, explanation === undefined ? words : `${words} (${explanation})`);
}

// Creates the socket inside `netns` (a path: /run/netns/NAME, /proc/PID/ns/net): a
// netlink socket belongs for life to the namespace it was created in, so the calling
// thread enters the namespace only for the socket(2) call and then returns to its
// own. A thread that cannot return must not run another instruction of a plugin in
// the wrong namespace: the process aborts (the daemon's client then answers 11).
function socketIn(c: Libc, protocol: number, netns: string): number {
  let target: number;
  try {
    target = openSync(netns, 'r');
  } catch (error) {
    throw new HostError(`cannot open network namespace ${netns}: ${(error as Error).message}`, (error as Error).message, (error as NodeJS.ErrnoException).code === 'ENOENT');
  }
  const home = openSync('/proc/thread-self/ns/net', 'r');
  try {
    if (c.setns(target, CLONE_NEWNET) !== 0) {
      const errno = c.errno();
      throw new HostError(`cannot enter network namespace ${netns}: ${c.strerror(errno)}`, c.strerror(errno));
    }
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    const socketErrno = c.errno();
    if (c.setns(home, CLONE_NEWNET) !== 0) {
      process.stderr.write(`trestle: cannot return to the node's network namespace after entering ${netns}: ${c.strerror(c.errno())}; aborting\n`);
      process.abort();
    }
    if (fd < 0) throw new HostError(`cannot open a netlink socket in ${netns}: ${c.strerror(socketErrno)}`, c.strerror(socketErrno));
    return fd;
  } finally {
    closeSync(home);
    closeSync(target);
  }
}

// One netlink socket, used synchronously: each request is sent and its whole answer
// read before the call returns, so requests of concurrent plugin calls in one process
// never interleave on it, and the kernel does the work inside send(2).
export class NetlinkSocket {
  private sequence = 0;
  private readonly buffer = Buffer.alloc(receiveSize);

  private constructor(
    private readonly c: Libc,
    private fd: number,
  ) {}

  // In this process's namespace, or in `netns` when given.
  static open(protocol: number, netns?: string): NetlinkSocket {
    const c = libc();
    const fd = netns === undefined ? c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol) : socketIn(c, protocol, netns);
    if (fd < 0) {
      const errno = c.errno();
      throw new HostError(`cannot open a netlink socket: ${c.strerror(errno)}`, c.strerror(errno));
    }
    const socket = new NetlinkSocket(c, fd);
    // Explanations with errors; acknowledgements without a copy of the request;
    // dumps filtered by the kernel (by master, kind, interface) instead of here.
    for (const option of [NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK]) socket.option(option);
    return socket;
  }

  private option(name: number): void {
    const on = Buffer.alloc(4);
    on.writeUInt32LE(1, 0);
    this.c.setsockopt(this.fd, SOL_NETLINK, name, on, 4);
  }

  close(): void {
    if (this.fd >= 0) this.c.close(this.fd);
    this.fd = -1;
  }

  private message(type: number, flags: number, body: Buffer): Buffer {
    this.sequence = (this.sequence + 1) >>> 0;
    return encodeMessage(type, flags | Flags.request, this.sequence, body);
  }

  private send(type: number, flags: number, body: Buffer): number {
    const message = this.message(type, flags, body);
    for (;;) {
      const sent = this.c.send(this.fd, message, message.length, 0);
      if (sent === message.length) return this.sequence;
      const errno = this.c.errno();
      if (sent < 0 && errno === EINTR) continue;
      throw failure(this.c, errno);
    }
  }

  // The messages of one datagram that answer `sequence` (a reply to an earlier,
  // abandoned request is skipped).
  private receive(sequence: number): Message[] {
    for (;;) {
      const length = this.c.recv(this.fd, this.buffer, this.buffer.length, 0);
      if (length < 0) {
        const errno = this.c.errno();
        if (errno === EINTR) continue;
        throw failure(this.c, errno);
      }
      const answers = decodeMessages(Buffer.from(this.buffer.subarray(0, length))).filter((message) => message.sequence === sequence);
      if (answers.length > 0) return answers;
    }
  }

  // A change (new, delete, set): returns once the kernel acknowledged it, or throws
  // its error.
  change(type: number, flags: number, body: Buffer): void {
    this.acknowledgement(this.send(type, flags | Flags.ack, body));
  }

  // The same, with the kernel's work done on a worker thread while this one goes on:
  // deleting a device returns from the kernel only after RCU grace periods, tens of
  // milliseconds after the device left its namespace.
  async changeInBackground(type: number, flags: number, body: Buffer): Promise<void> {
    const message = this.message(type, flags | Flags.ack, body);
    const sequence = this.sequence;
    const sent = await this.c.sendInBackground(this.fd, message, message.length, 0);
    // The worker's errno is not ours to read; EIO stands for any failed send.
    if (sent !== message.length) throw failure(this.c, 5);
    this.acknowledgement(sequence);
  }

  private acknowledgement(sequence: number): void {
    for (;;) {
      for (const message of this.receive(sequence)) {
        if (message.type !== MessageType.error) continue;
        const { errno, explanation } = decodeError(message.payload, message.flags);
        if (errno !== 0) throw failure(this.c, errno, explanation);
        return;
      }
    }
  }

  // One object (a get by name or index): its message, or the kernel's error.
  get(type: number, body: Buffer): Message {
    const sequence = this.send(type, 0, body);
    for (;;) {
      for (const message of this.receive(sequence)) {
        if (message.type === MessageType.error) {
          const { errno, explanation } = decodeError(message.payload, message.flags);
          throw failure(this.c, errno === 0 ? 61 : errno, explanation);
        }
        return message;
      }
    }
  }

  // Every object of a dump, read again from the start if the kernel says the table
  // changed under it.
  dump(type: number, body: Buffer): Message[] {
    for (let attempt = 0; ; attempt++) {
      const sequence = this.send(type, Flags.dump, body);
      const objects: Message[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const message of this.receive(sequence)) {
          if ((message.flags & dumpInterrupted) !== 0) interrupted = true;
          if (message.type === MessageType.done) {
            const errno = message.payload.length >= 4 ? -message.payload.readInt32LE(0) : 0;
            if (errno > 0) throw failure(this.c, errno);
            done = true;
          } else if (message.type === MessageType.error) {
            const { errno, explanation } = decodeError(message.payload, message.flags);
            if (errno !== 0) throw failure(this.c, errno, explanation);
            done = true;
          } else if (message.type !== MessageType.noop) {
            objects.push(message);
          }
        }
      }
      if (!interrupted || attempt >= 2) return objects;
    }
  }
}
