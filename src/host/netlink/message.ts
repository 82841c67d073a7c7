// Netlink's wire format (netlink(7)): a 16-byte header per message, then a family
// header, then type-length-value attributes, each padded to 4 bytes. Host byte order,
// which on every machine Trestle supports is little-endian.

export const headerLength = 16;

export const MessageType = { noop: 1, error: 2, done: 3 } as const;

export const Flags = {
  request: 0x1,
  multi: 0x2,
  ack: 0x4,
  // Dump (root | match), or, for a new object: replace, exclusive, create.
  dump: 0x300,
  replace: 0x100,
  exclusive: 0x200,
  create: 0x400,
} as const;

// In an error message: the request was not echoed back, extended-ack attributes follow.
const errorCapped = 0x100;
const errorHasAttributes = 0x200;
const errorAttributeMessage = 1;

const nestedFlag = 0x8000;
const byteOrderFlag = 0x4000;

export function align(length: number): number {
  return (length + 3) & ~3;
}

export function attribute(type: number, payload: Buffer): Buffer {
  const buffer = Buffer.alloc(align(4 + payload.length));
  buffer.writeUInt16LE(4 + payload.length, 0);
  buffer.writeUInt16LE(type, 2);
  payload.copy(buffer, 4);
  return buffer;
}

export function u8Attribute(type: number, value: number): Buffer {
  return attribute(type, Buffer.from([value]));
}

export function u32Attribute(type: number, value: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32LE(value, 0);
  return attribute(type, payload);
}

// Names, kinds and aliases travel NUL-terminated.
export function stringAttribute(type: number, value: string): Buffer {
  return attribute(type, Buffer.from(`${value}\0`, 'utf8'));
}

export function nestedAttribute(type: number, children: readonly Buffer[]): Buffer {
  return attribute(type | nestedFlag, Buffer.concat(children));
}

export function encodeMessage(type: number, flags: number, sequence: number, body: Buffer): Buffer {
  const header = Buffer.alloc(headerLength);
  header.writeUInt32LE(headerLength + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags, 6);
  header.writeUInt32LE(sequence, 8);
  return Buffer.concat([header, body]);
}

export interface Message {
  type: number;
  flags: number;
  sequence: number;
  // What follows the header.
  payload: Buffer;
}

// The messages in one datagram; a truncated tail (never sent by the kernel) is dropped.
export function decodeMessages(datagram: Buffer): Message[] {
  const messages: Message[] = [];
  let offset = 0;
  while (offset + headerLength <= datagram.length) {
    const length = datagram.readUInt32LE(offset);
    if (length < headerLength || offset + length > datagram.length) break;
    messages.push({
      type: datagram.readUInt16LE(offset + 4),
      flags: datagram.readUInt16LE(offset + 6),
      sequence: datagram.readUInt32LE(offset + 8),
      payload: datagram.subarray(offset + headerLength, offset + length),
    });
    offset += align(length);
  }
  return messages;
}

// Attributes by type (the last of a type wins, as the kernel's own parser does).
export function decodeAttributes(buffer: Buffer, start = 0): Map<number, Buffer> {
  const attributes = new Map<number, Buffer>();
  let offset = start;
  while (offset + 4 <= buffer.length) {
    const length = buffer.readUInt16LE(offset);
    if (length < 4 || offset + length > buffer.length) break;
    attributes.set(buffer.readUInt16LE(offset + 2) & ~(nestedFlag | byteOrderFlag), buffer.subarray(offset + 4, offset + length));
    offset += align(length);
  }
  return attributes;
}

export function decodeString(payload: Buffer | undefined): string | undefined {
  if (payload === undefined) return undefined;
  const end = payload.indexOf(0);
  return payload.toString('utf8', 0, end < 0 ? payload.length : end);
}

export function decodeU32(payload: Buffer | undefined): number | undefined {
  return payload !== undefined && payload.length >= 4 ? payload.readUInt32LE(0) : undefined;
}

export function decodeU8(payload: Buffer | undefined): number | undefined {
  return payload !== undefined && payload.length >= 1 ? payload.readUInt8(0) : undefined;
}

// An NLMSG_ERROR payload: 0 is an acknowledgement, a negative errno a failure, with
// the kernel's own explanation when extended acknowledgements are on.
export function decodeError(payload: Buffer, flags: number): { errno: number; explanation?: string } {
  const errno = -payload.readInt32LE(0);
  if ((flags & errorHasAttributes) === 0) return { errno };
  // The echoed request: only its header when capped, the whole of it otherwise.
  const echoed = (flags & errorCapped) !== 0 ? headerLength : align(payload.readUInt32LE(4));
  const explanation = decodeString(decodeAttributes(payload, 4 + echoed).get(errorAttributeMessage));
  return explanation === undefined || explanation === '' ? { errno } : { errno, explanation };
}
