// digest() names files that outlive a Trestle version (owner markers, state files,
// link aliases): its 32-bit halves must give exactly 64-bit FNV-1a.
import fc from 'fast-check';
import t from 'tap';
import { digest } from '../../src/util/digest.js';

function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash.toString(16).padStart(16, '0');
}

t.test('digest is 64-bit FNV-1a of the UTF-8 bytes', async (t) => {
  t.equal(digest(''), 'cbf29ce484222325', 'the offset basis for no bytes');
  t.equal(digest('a'), 'af63dc4c8601ec8c', 'the published value for "a"');
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (text) => digest(text) === fnv1a64(text)),
    { numRuns: 5000 },
  );
  t.pass('5,000 texts agree with the BigInt definition');
});
