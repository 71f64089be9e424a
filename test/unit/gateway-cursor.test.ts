/**
 * gateway/cursor.ts, the one page-cursor codec of the API: round trips, the exact text of a cursor (clients hold
 * them across versions), and every malformed cursor refused with GW_ERR_CURSOR_INVALID. No server.
 */
import t from 'tap'
import fc from 'fast-check'
import {
  decodeCursor,
  decodeTextCursor,
  encodeCursor,
  encodeTextCursor,
  fieldOf,
  isTextKey,
} from '../../gateway/cursor.js'

const invalid = { code: 'GW_ERR_CURSOR_INVALID', status: 400 }
const keyK = (v: unknown): string | undefined => {
  const k = fieldOf(v, 'k')
  return isTextKey(k) ? k : undefined
}

t.test('JSON cursors: base64url of the key, round trip, shape checked', async (t) => {
  t.equal(encodeCursor({ k: 'env-0001' }), Buffer.from('{"k":"env-0001"}').toString('base64url'))
  t.equal(decodeCursor(undefined, keyK), undefined, 'no cursor: the first page')
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (k) => {
      const c = encodeCursor({ k })
      if (!/^[A-Za-z0-9_-]*$/.test(c)) return false
      if (!k.includes('\u0000')) return decodeCursor(c, keyK) === k
      try {
        decodeCursor(c, keyK)
      } catch (e) {
        return (e as { code?: string }).code === 'GW_ERR_CURSOR_INVALID'
      }
      return false
    }),
    { seed: 16, examples: [['a\u0000b'], ['']] },
  )
  for (const raw of [
    '',
    '!!',
    Buffer.from('nope').toString('base64url'),
    encodeCursor(null),
    encodeCursor([1]),
    encodeCursor({ k: 1 }),
    encodeCursor({ k: 'a\u0000' }),
  ]) {
    t.throws(() => decodeCursor(raw, keyK), invalid, JSON.stringify(raw))
  }
})

t.test('text cursors: base64url of the id, checked by the id pattern', async (t) => {
  const ID = /^[A-Za-z0-9._-]{1,64}$/
  t.equal(decodeTextCursor(encodeTextCursor('depot-1'), ID), 'depot-1')
  t.equal(decodeTextCursor(undefined, ID), undefined)
  t.throws(() => decodeTextCursor(encodeTextCursor('a b'), ID), invalid)
  t.throws(() => decodeTextCursor(encodeCursor({ k: 'x' }), ID), invalid, 'a JSON cursor of another list')
})
