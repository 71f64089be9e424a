/**
 * Bad-input suite: every case gets its documented status and code, the valid readings of mixed batches are all
 * in the stream afterwards (counted), and the gateway keeps answering. Item cases run twice: alone (the batch
 * is rejected, 400 GW_ERR_BATCH_REJECTED) and next to a valid reading (200, the valid one stored).
 */
import t from 'tap'
import { bearer, setupGateway } from '../helpers/gateway.js'

const NOW = Date.now()
const DAY = 86_400_000
const ok = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  kind: 'sensor',
  id: 'ok1',
  ts: NOW,
  fields: { temperature: 20 },
  ...over,
})
const withFields = (fields: unknown): Record<string, unknown> => ok({ fields })
const manyFields = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i]))
let nested: unknown = 1
for (let i = 0; i < 200; i++) nested = { a: nested }

/** [name, item, code] for one bad item of `POST /v1/readings`. */
const ITEM_CASES: [string, unknown, string][] = [
  ['kind missing', { id: 's', ts: NOW, fields: { a: 1 } }, 'GW_ERR_KIND_INVALID'],
  ['kind unknown', ok({ kind: 'robot' }), 'GW_ERR_KIND_INVALID'],
  ['kind number', ok({ kind: 1 }), 'GW_ERR_KIND_INVALID'],
  ['kind wrong case', ok({ kind: 'Sensor' }), 'GW_ERR_KIND_INVALID'],
  ['id missing', { kind: 'sensor', ts: NOW, fields: { a: 1 } }, 'GW_ERR_ID_INVALID'],
  ['id empty', ok({ id: '' }), 'GW_ERR_ID_INVALID'],
  ['id with a dot (subject token)', ok({ id: 'a.b' }), 'GW_ERR_ID_INVALID'],
  ['id wildcard *', ok({ id: 'a*' }), 'GW_ERR_ID_INVALID'],
  ['id wildcard >', ok({ id: '>' }), 'GW_ERR_ID_INVALID'],
  ['id 65 chars', ok({ id: 'x'.repeat(65) }), 'GW_ERR_ID_INVALID'],
  ['id unicode', ok({ id: 'sënsor' }), 'GW_ERR_ID_INVALID'],
  ['id emoji', ok({ id: 'car🏎' }), 'GW_ERR_ID_INVALID'],
  ['id control char', ok({ id: 'a\u0000b' }), 'GW_ERR_ID_INVALID'],
  ['id newline', ok({ id: 'a\nb' }), 'GW_ERR_ID_INVALID'],
  ['id number', ok({ id: 5 }), 'GW_ERR_ID_INVALID'],
  ['id SQL injection', ok({ id: "x'; DROP TABLE sensors;--" }), 'GW_ERR_ID_INVALID'],
  ['id path traversal', ok({ id: '../../etc/passwd' }), 'GW_ERR_ID_INVALID'],
  ['ts missing', { kind: 'sensor', id: 's', fields: { a: 1 } }, 'GW_ERR_TS_INVALID'],
  ['ts ISO string', ok({ ts: '2024-01-01T00:00:00Z' }), 'GW_ERR_TS_INVALID'],
  ['ts numeric string', ok({ ts: String(NOW) }), 'GW_ERR_TS_INVALID'],
  ['ts "NaN"', ok({ ts: 'NaN' }), 'GW_ERR_TS_INVALID'],
  ['ts "Infinity"', ok({ ts: 'Infinity' }), 'GW_ERR_TS_INVALID'],
  ['ts fractional', ok({ ts: NOW + 0.5 }), 'GW_ERR_TS_INVALID'],
  ['ts negative', ok({ ts: -1 }), 'GW_ERR_TS_INVALID'],
  ['ts null', ok({ ts: null }), 'GW_ERR_TS_INVALID'],
  ['ts 1e300', ok({ ts: 1e300 }), 'GW_ERR_TS_INVALID'],
  ['ts boolean', ok({ ts: true }), 'GW_ERR_TS_INVALID'],
  ['ts 8 days old', ok({ ts: NOW - 8 * DAY }), 'GW_ERR_TS_TOO_OLD'],
  ['ts epoch 0', ok({ ts: 0 }), 'GW_ERR_TS_TOO_OLD'],
  ['ts in seconds', ok({ ts: Math.floor(NOW / 1000) }), 'GW_ERR_TS_TOO_OLD'],
  ['ts year 3000', ok({ ts: 32_503_680_000_000 }), 'GW_ERR_TS_IN_FUTURE'],
  ['ts 10 minutes ahead', ok({ ts: NOW + 600_000 }), 'GW_ERR_TS_IN_FUTURE'],
  ['ts in microseconds', ok({ ts: NOW * 1000 }), 'GW_ERR_TS_IN_FUTURE'],
  ['fields missing', { kind: 'sensor', id: 's', ts: NOW }, 'GW_ERR_FIELDS_INVALID'],
  ['fields array', withFields([1, 2]), 'GW_ERR_FIELDS_INVALID'],
  ['fields empty', withFields({}), 'GW_ERR_FIELDS_INVALID'],
  ['fields string', withFields('temperature=20'), 'GW_ERR_FIELDS_INVALID'],
  ['fields null', withFields(null), 'GW_ERR_FIELDS_INVALID'],
  ['65 fields', withFields(manyFields), 'GW_ERR_FIELDS_TOO_MANY'],
  ['field name empty', withFields({ '': 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name with space', withFields({ 'a b': 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name starts with digit', withFields({ '1a': 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name constructor', withFields({ constructor: 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name 65 chars', withFields({ ['f'.repeat(65)]: 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name unicode', withFields({ température: 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name injection', withFields({ "a');--": 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field value null', withFields({ a: null }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value object', withFields({ a: { b: 1 } }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value array', withFields({ a: [1] }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value deeply nested', withFields({ a: nested }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value "NaN"', withFields({ a: 'NaN' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value "Infinity"', withFields({ a: 'Infinity' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value "-Infinity"', withFields({ a: '-Infinity' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value " nan "', withFields({ a: ' nan ' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value "+inf"', withFields({ a: '+inf' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value string 257 chars', withFields({ a: 'x'.repeat(257) }), 'GW_ERR_STRING_TOO_LONG'],
  ['field value emoji string too long', withFields({ a: '🏎'.repeat(129) }), 'GW_ERR_STRING_TOO_LONG'],
  ['profile unknown', ok({ profile: 'nope' }), 'GW_ERR_PROFILE_INVALID'],
  ['profile of another kind', ok({ profile: 'race' }), 'GW_ERR_PROFILE_INVALID'],
  ['profile number', ok({ profile: 1 }), 'GW_ERR_PROFILE_INVALID'],
  ['loc lat 91', ok({ loc: { lat: 91, lon: 0 } }), 'GW_ERR_LOC_INVALID'],
  ['loc lon -181', ok({ loc: { lat: 0, lon: -181 } }), 'GW_ERR_LOC_INVALID'],
  ['loc strings', ok({ loc: { lat: '45', lon: '9' } }), 'GW_ERR_LOC_INVALID'],
  ['loc extra property', ok({ loc: { lat: 45, lon: 9, alt: 100 } }), 'GW_ERR_LOC_INVALID'],
  ['loc array', ok({ loc: [45, 9] }), 'GW_ERR_LOC_INVALID'],
  ['loc null', ok({ loc: null }), 'GW_ERR_LOC_INVALID'],
  ['loc missing lon', ok({ loc: { lat: 45 } }), 'GW_ERR_LOC_INVALID'],
  ['rid empty', ok({ rid: '' }), 'GW_ERR_RID_INVALID'],
  ['rid with space', ok({ rid: 'a b' }), 'GW_ERR_RID_INVALID'],
  ['rid with CRLF (header injection)', ok({ rid: 'a\r\nNats-Msg-Id: x' }), 'GW_ERR_RID_INVALID'],
  ['rid 129 chars', ok({ rid: 'r'.repeat(129) }), 'GW_ERR_RID_INVALID'],
  ['rid number', ok({ rid: 7 }), 'GW_ERR_RID_INVALID'],
  ['rid unicode', ok({ rid: 'réading' }), 'GW_ERR_RID_INVALID'],
  ['unknown property', ok({ extra: 1 }), 'GW_ERR_ITEM_UNKNOWN_PROPERTY'],
  ['unknown property "site"', ok({ site: 'b' }), 'GW_ERR_ITEM_UNKNOWN_PROPERTY'],
  ['item null', null, 'GW_ERR_ITEM_NOT_OBJECT'],
  ['item string', 'reading', 'GW_ERR_ITEM_NOT_OBJECT'],
  ['item array', [ok()], 'GW_ERR_ITEM_NOT_OBJECT'],
  ['item number', 42, 'GW_ERR_ITEM_NOT_OBJECT'],
  ['item boolean', true, 'GW_ERR_ITEM_NOT_OBJECT'],
  // --- added: types, numbers, unicode, keys, ranges (issue 3 list) ---
  ['kind upper case', ok({ kind: 'SENSOR' }), 'GW_ERR_KIND_INVALID'],
  ['kind Vehicle', ok({ kind: 'Vehicle' }), 'GW_ERR_KIND_INVALID'],
  ['kind trailing space', ok({ kind: 'sensor ' }), 'GW_ERR_KIND_INVALID'],
  ['kind plural', ok({ kind: 'sensors' }), 'GW_ERR_KIND_INVALID'],
  ['kind null', ok({ kind: null }), 'GW_ERR_KIND_INVALID'],
  ['kind array', ok({ kind: ['sensor'] }), 'GW_ERR_KIND_INVALID'],
  ['kind object', ok({ kind: { name: 'sensor' } }), 'GW_ERR_KIND_INVALID'],
  ['id 1000 chars', ok({ id: 'x'.repeat(1000) }), 'GW_ERR_ID_INVALID'],
  ['id tab', ok({ id: 'a\tb' }), 'GW_ERR_ID_INVALID'],
  ['id zero-width space', ok({ id: 'ab\u200b' }), 'GW_ERR_ID_INVALID'],
  ['id RTL override', ok({ id: '\u202eab' }), 'GW_ERR_ID_INVALID'],
  ['id trailing NUL', ok({ id: 'ab\u0000' }), 'GW_ERR_ID_INVALID'],
  ['id DEL char', ok({ id: 'ab\u007f' }), 'GW_ERR_ID_INVALID'],
  ['id BOM char', ok({ id: '\ufeffab' }), 'GW_ERR_ID_INVALID'],
  ['id fullwidth letters', ok({ id: 'ａｂ' }), 'GW_ERR_ID_INVALID'],
  ['id lone surrogate', ok({ id: 'a\ud800' }), 'GW_ERR_ID_INVALID'],
  ['id object', ok({ id: { a: 1 } }), 'GW_ERR_ID_INVALID'],
  ['id array', ok({ id: ['ok1'] }), 'GW_ERR_ID_INVALID'],
  ['id space only', ok({ id: ' ' }), 'GW_ERR_ID_INVALID'],
  ['ts float string', ok({ ts: `${NOW}.5` }), 'GW_ERR_TS_INVALID'],
  ['ts "-Infinity"', ok({ ts: '-Infinity' }), 'GW_ERR_TS_INVALID'],
  ['ts float 0.1 ms', ok({ ts: NOW + 0.1 }), 'GW_ERR_TS_INVALID'],
  ['ts negative now', ok({ ts: -NOW }), 'GW_ERR_TS_INVALID'],
  ['ts 2^53 (unsafe)', ok({ ts: 2 ** 53 }), 'GW_ERR_TS_INVALID'],
  ['ts MAX_SAFE_INTEGER', ok({ ts: Number.MAX_SAFE_INTEGER }), 'GW_ERR_TS_IN_FUTURE'],
  ['ts array', ok({ ts: [NOW] }), 'GW_ERR_TS_INVALID'],
  ['ts object', ok({ ts: { $date: NOW } }), 'GW_ERR_TS_INVALID'],
  ['ts empty string', ok({ ts: '' }), 'GW_ERR_TS_INVALID'],
  ['fields boolean', withFields(true), 'GW_ERR_FIELDS_INVALID'],
  ['fields number', withFields(1), 'GW_ERR_FIELDS_INVALID'],
  ['fields array of objects', withFields([{ a: 1 }]), 'GW_ERR_FIELDS_INVALID'],
  ['field name prototype', withFields({ prototype: 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name control char', withFields({ 'a\u0001': 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name newline', withFields({ 'a\nb': 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name with $ (NoSQL operator)', withFields({ $gt: 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field name 1000 chars', withFields({ ['f'.repeat(1000)]: 1 }), 'GW_ERR_FIELD_NAME_INVALID'],
  ['field value nested object 2 deep', withFields({ a: { b: { c: 1 } } }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value empty object', withFields({ a: {} }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value empty array', withFields({ a: [] }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['field value "INF"', withFields({ a: 'INF' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value "nan" lower', withFields({ a: 'nan' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value "-NaN"', withFields({ a: '-NaN' }), 'GW_ERR_FIELD_NOT_FINITE'],
  ['field value string 10k chars', withFields({ a: 'y'.repeat(10_000) }), 'GW_ERR_STRING_TOO_LONG'],
  ['second field bad', withFields({ a: 1, b: null }), 'GW_ERR_FIELD_VALUE_INVALID'],
  ['profile empty', ok({ profile: '' }), 'GW_ERR_PROFILE_INVALID'],
  ['profile upper case', ok({ profile: 'ENVIRONMENT' }), 'GW_ERR_PROFILE_INVALID'],
  ['profile __proto__', ok({ profile: '__proto__' }), 'GW_ERR_PROFILE_INVALID'],
  ['profile null', ok({ profile: null }), 'GW_ERR_PROFILE_INVALID'],
  ['loc lat -91', ok({ loc: { lat: -91, lon: 0 } }), 'GW_ERR_LOC_INVALID'],
  ['loc lon 181', ok({ loc: { lat: 0, lon: 181 } }), 'GW_ERR_LOC_INVALID'],
  ['loc lat "NaN"', ok({ loc: { lat: 'NaN', lon: 0 } }), 'GW_ERR_LOC_INVALID'],
  ['loc lat boolean', ok({ loc: { lat: true, lon: 0 } }), 'GW_ERR_LOC_INVALID'],
  ['loc empty object', ok({ loc: {} }), 'GW_ERR_LOC_INVALID'],
  ['loc nested object', ok({ loc: { lat: { deg: 45 }, lon: 9 } }), 'GW_ERR_LOC_INVALID'],
  ['loc GeoJSON point', ok({ loc: { type: 'Point', coordinates: [9, 45] } }), 'GW_ERR_LOC_INVALID'],
  ['loc string', ok({ loc: '45,9' }), 'GW_ERR_LOC_INVALID'],
  ['rid 1000 chars', ok({ rid: 'r'.repeat(1000) }), 'GW_ERR_RID_INVALID'],
  ['rid tab', ok({ rid: 'a\tb' }), 'GW_ERR_RID_INVALID'],
  ['rid DEL char', ok({ rid: 'a\u007f' }), 'GW_ERR_RID_INVALID'],
  ['rid NUL', ok({ rid: 'a\u0000' }), 'GW_ERR_RID_INVALID'],
  ['rid null', ok({ rid: null }), 'GW_ERR_RID_INVALID'],
  ['rid object', ok({ rid: { id: 1 } }), 'GW_ERR_RID_INVALID'],
  ['unknown property "Kind"', ok({ Kind: 'sensor' }), 'GW_ERR_ITEM_UNKNOWN_PROPERTY'],
  ['unknown property "constructor"', ok({ constructor: 1 }), 'GW_ERR_ITEM_UNKNOWN_PROPERTY'],
  ['unknown property "prototype"', ok({ prototype: {} }), 'GW_ERR_ITEM_UNKNOWN_PROPERTY'],
  ['unknown property with nested object', ok({ meta: { a: { b: 1 } } }), 'GW_ERR_ITEM_UNKNOWN_PROPERTY'],
  ['item empty object', {}, 'GW_ERR_KIND_INVALID'],
  ['item empty array', [], 'GW_ERR_ITEM_NOT_OBJECT'],
]

const VALID_VIN = '1M8GDM9AXKP042788'
const deep = '['.repeat(5000) + ']'.repeat(5000)
interface ReqCase {
  name: string
  method?: 'GET' | 'POST'
  url?: string
  ct?: string
  body?: string
  headers?: Record<string, string>
  status: number
  code: string
  first?: string
}
const json = (v: unknown): string => JSON.stringify(v)
/** A one-item JSON array whose item is valid except for the raw JSON members in `members` (placed last, so they win). */
const raw = (members: string): string => `[${json(ok({ id: 'raw1' })).slice(0, -1)},${members}}]`
const REQ_CASES: ReqCase[] = [
  { name: 'truncated JSON', body: '[{"kind":"sensor"', status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  {
    name: 'NaN literal',
    body: `[{"kind":"sensor","id":"s","ts":${NOW},"fields":{"a":NaN}}]`,
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  {
    name: 'Infinity literal',
    body: `[{"kind":"sensor","id":"s","ts":${NOW},"fields":{"a":Infinity}}]`,
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  { name: 'trailing comma', body: `[${json(ok())},]`, status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'single quotes', body: "[{'kind':'sensor'}]", status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'empty JSON body', body: '', status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  {
    name: '__proto__ poisoning',
    body: `[{"kind":"sensor","id":"s","ts":${NOW},"fields":{"a":1},"__proto__":{"x":1}}]`,
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  {
    name: 'constructor.prototype poisoning',
    body: '[{"constructor":{"prototype":{"x":1}}}]',
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  { name: 'body is an object', body: json(ok()), status: 400, code: 'GW_ERR_BODY_INVALID' },
  { name: 'body is a string', body: '"readings"', status: 400, code: 'GW_ERR_BODY_INVALID' },
  { name: 'body is a number', body: '5', status: 400, code: 'GW_ERR_BODY_INVALID' },
  { name: 'body is null', body: 'null', status: 400, code: 'GW_ERR_BODY_INVALID' },
  { name: 'empty batch', body: '[]', status: 400, code: 'GW_ERR_BATCH_EMPTY' },
  {
    name: 'too many items',
    body: json(Array.from({ length: 51 }, () => ok())),
    status: 413,
    code: 'GW_ERR_BATCH_TOO_LARGE',
  },
  {
    name: 'oversized body',
    body: json([ok({ fields: { a: 'x'.repeat(70_000) } })]),
    status: 413,
    code: 'GW_ERR_BODY_TOO_LARGE',
  },
  {
    name: 'oversized NDJSON',
    ct: 'application/x-ndjson',
    body: `${json(ok())}\n`.repeat(1_000),
    status: 413,
    code: 'GW_ERR_BODY_TOO_LARGE',
  },
  { name: 'deep nesting', body: deep, status: 400, code: 'GW_ERR_BATCH_REJECTED', first: 'GW_ERR_ITEM_NOT_OBJECT' },
  { name: 'text/plain', ct: 'text/plain', body: json([ok()]), status: 415, code: 'GW_ERR_MEDIA_TYPE' },
  { name: 'application/xml', ct: 'application/xml', body: '<r/>', status: 415, code: 'GW_ERR_MEDIA_TYPE' },
  {
    name: 'form encoded',
    ct: 'application/x-www-form-urlencoded',
    body: 'a=1',
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'Idempotency-Key with space',
    body: json([ok()]),
    headers: { 'idempotency-key': 'a b' },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'Idempotency-Key 101 chars',
    body: json([ok()]),
    headers: { 'idempotency-key': 'k'.repeat(101) },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'duplicated rid in a batch',
    body: json([ok({ id: 'dup', rid: 'd1' }), ok({ id: 'dup', rid: 'd1' })]),
    status: 200,
    code: '',
    first: 'GW_ERR_RID_DUPLICATE',
  },
  {
    name: 'NDJSON truncated last line',
    ct: 'application/x-ndjson',
    body: `${json(ok({ id: 'nd1' }))}\n{"kind":"sens`,
    status: 200,
    code: '',
    first: 'GW_ERR_ITEM_MALFORMED',
  },
  {
    name: 'NDJSON all garbage',
    ct: 'application/x-ndjson',
    body: 'foo\nbar\n',
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_MALFORMED',
  },
  { name: 'NDJSON empty', ct: 'application/x-ndjson', body: '\n\n', status: 400, code: 'GW_ERR_BATCH_EMPTY' },
  {
    name: 'NDJSON array line',
    ct: 'application/x-ndjson',
    body: json([ok()]),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_NOT_OBJECT',
  },
  {
    name: 'NDJSON NaN line',
    ct: 'application/x-ndjson',
    body: `{"kind":"sensor","id":"s","ts":${NOW},"fields":{"a":NaN}}`,
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_MALFORMED',
  },
  {
    name: 'NDJSON __proto__ field',
    ct: 'application/x-ndjson',
    body: `{"kind":"sensor","id":"s","ts":${NOW},"fields":{"__proto__":1}}`,
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_FIELD_NAME_INVALID',
  },
  { name: 'unknown route', url: '/v1/nothing', body: '[]', status: 404, code: 'GW_ERR_ROUTE_NOT_FOUND' },
  { name: 'wrong method', method: 'GET', url: '/v1/readings', status: 404, code: 'GW_ERR_ROUTE_NOT_FOUND' },
  {
    name: 'sensor route: id with a dot',
    url: '/v1/sensors/a.b/readings',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'sensor route: id 65 chars',
    url: `/v1/sensors/${'s'.repeat(65)}/readings`,
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'sensor route: encoded unicode id',
    url: '/v1/sensors/s%C3%ABnsor/readings',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'sensor route: item names kind',
    url: '/v1/sensors/s1/readings',
    body: json([{ kind: 'sensor', ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_UNKNOWN_PROPERTY',
  },
  {
    name: 'sensor route: body object',
    url: '/v1/sensors/s1/readings',
    body: json({ ts: NOW, fields: { a: 1 } }),
    status: 400,
    code: 'GW_ERR_BODY_INVALID',
  },
  {
    name: 'sensor route: vehicle profile',
    url: '/v1/sensors/s1/readings',
    body: json([{ ts: NOW, fields: { a: 1 }, profile: 'race' }]),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_PROFILE_INVALID',
  },
  {
    name: 'VIN 16 chars',
    url: '/v1/vehicles/1M8GDM9AXKP04278/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN 18 chars',
    url: '/v1/vehicles/1M8GDM9AXKP0427881/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN with I',
    url: '/v1/vehicles/1M8GDM9AXKP04278I/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN with O',
    url: '/v1/vehicles/OM8GDM9AXKP042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN with Q',
    url: '/v1/vehicles/1M8GDM9AXKP0Q2788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN lower case',
    url: `/v1/vehicles/${VALID_VIN.toLowerCase()}/telemetry`,
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN wrong check digit',
    url: '/v1/vehicles/1M8GDM9A1KP042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN with a dash',
    url: '/v1/vehicles/1M8GDM9AX-P042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN bad, body bad too: VIN reported',
    url: '/v1/vehicles/XYZ/telemetry',
    body: '{',
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'vehicle route: sensor profile',
    url: `/v1/vehicles/${VALID_VIN}/telemetry`,
    body: json([{ ts: NOW, fields: { a: 1 }, profile: 'environment' }]),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_PROFILE_INVALID',
  },
  {
    name: 'state: unknown kind',
    method: 'GET',
    url: '/v1/entities/robot/x/state',
    status: 400,
    code: 'GW_ERR_KIND_INVALID',
  },
  {
    name: 'state: id with encoded dot',
    method: 'GET',
    url: '/v1/entities/sensor/a%2Eb/state',
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'state: id 65 chars',
    method: 'GET',
    url: `/v1/entities/sensor/${'s'.repeat(65)}/state`,
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'state: unknown entity',
    method: 'GET',
    url: '/v1/entities/vehicle/nobody/state',
    status: 404,
    code: 'GW_ERR_ENTITY_UNKNOWN',
  },
  // --- added: raw JSON the item table cannot express, encodings, headers, VINs, paths ---
  {
    name: 'ts -0 (negative zero)',
    body: raw('"ts":-0'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_TS_TOO_OLD',
  },
  {
    name: 'ts 1e400 (exponent overflow)',
    body: raw('"ts":1e400'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_TS_INVALID',
  },
  {
    name: 'ts -1e400',
    body: raw('"ts":-1e400'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_TS_INVALID',
  },
  { name: 'ts as exponent literal (integer value)', body: raw(`"ts":${NOW / 1000}e3`), status: 200, code: '' },
  {
    name: 'field 1e400',
    body: raw('"fields":{"a":1e400}'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_FIELD_NOT_FINITE',
  },
  {
    name: 'field -1e400',
    body: raw('"fields":{"a":-1e400}'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_FIELD_NOT_FINITE',
  },
  { name: 'field 1e-400 underflows to 0 (accepted)', body: raw('"fields":{"a":1e-400}'), status: 200, code: '' },
  { name: 'field -0 (accepted)', body: raw('"fields":{"a":-0}'), status: 200, code: '' },
  {
    name: 'field largest double (accepted)',
    body: raw('"fields":{"a":1.7976931348623157e308}'),
    status: 200,
    code: '',
  },
  {
    name: 'field 400-digit integer',
    body: raw(`"fields":{"a":${'9'.repeat(400)}}`),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_FIELD_NOT_FINITE',
  },
  {
    name: 'loc lat 1e400',
    body: raw('"loc":{"lat":1e400,"lon":0}'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_LOC_INVALID',
  },
  {
    name: 'duplicate key: last kind wins (invalid)',
    body: raw('"kind":"sensor","kind":"robot"'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_KIND_INVALID',
  },
  { name: 'duplicate key: last ts wins (valid)', body: raw(`"ts":0,"ts":${NOW}`), status: 200, code: '' },
  { name: 'duplicate field name: last wins', body: raw('"fields":{"a":"NaN","a":1}'), status: 200, code: '' },
  {
    name: '__proto__ inside fields',
    body: raw('"fields":{"__proto__":{"polluted":1}}'),
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  {
    name: '__proto__ inside loc',
    body: raw('"loc":{"__proto__":{"lat":1}}'),
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  {
    name: 'constructor key at item level',
    body: raw('"constructor":{"name":"x"}'),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_UNKNOWN_PROPERTY',
  },
  {
    name: 'NDJSON __proto__ at item level',
    ct: 'application/x-ndjson',
    body: `{"__proto__":{"x":1},"kind":"sensor","id":"s","ts":${NOW},"fields":{"a":1}}`,
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_UNKNOWN_PROPERTY',
  },
  {
    name: 'NDJSON constructor.prototype',
    ct: 'application/x-ndjson',
    body: '{"constructor":{"prototype":{"x":1}}}',
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_UNKNOWN_PROPERTY',
  },
  {
    name: 'NDJSON whitespace-only lines',
    ct: 'application/x-ndjson',
    body: ' \n\t\n \r\n',
    status: 400,
    code: 'GW_ERR_BATCH_EMPTY',
  },
  {
    name: 'NDJSON CRLF lines and blank lines between',
    ct: 'application/x-ndjson',
    body: `${json(ok({ id: 'crlf1' }))}\r\n\r\n  \r\n${json(ok({ id: 'crlf2' }))}\r\n`,
    status: 200,
    code: '',
  },
  {
    name: 'NDJSON 1e400 line',
    ct: 'application/x-ndjson',
    body: raw('"fields":{"a":1e400}').slice(1, -1),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_FIELD_NOT_FINITE',
  },
  {
    name: 'NDJSON line is a number',
    ct: 'application/x-ndjson',
    body: '42',
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_NOT_OBJECT',
  },
  {
    name: 'NDJSON too many lines',
    ct: 'application/x-ndjson',
    body: `${json(ok())}\n`.repeat(51),
    status: 413,
    code: 'GW_ERR_BATCH_TOO_LARGE',
  },
  { name: 'JSON with a leading BOM (tolerated)', body: `\ufeff${json([ok({ id: 'bom1' })])}`, status: 200, code: '' },
  {
    name: 'NDJSON with a leading BOM (tolerated)',
    ct: 'application/x-ndjson',
    body: `\ufeff${json(ok({ id: 'bom2' }))}`,
    status: 200,
    code: '',
  },
  { name: 'JSON with a BOM in the middle', body: `[\ufeff${json(ok())}]`, status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'whitespace-only JSON body', body: '   \n ', status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'two JSON documents', body: `${json([ok()])}${json([ok()])}`, status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'JSON comment', body: `[/* c */${json(ok())}]`, status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'hex number literal', body: raw('"fields":{"a":0x10}'), status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  { name: 'leading-zero number', body: raw('"fields":{"a":01}'), status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  {
    name: 'raw control char in a string',
    body: raw('"fields":{"a":"x\u0001y"}'),
    status: 400,
    code: 'GW_ERR_BODY_MALFORMED',
  },
  { name: 'invalid UTF-8 escape', body: raw('"fields":{"a":"\\uZZZZ"}'), status: 400, code: 'GW_ERR_BODY_MALFORMED' },
  {
    name: 'charset=utf-8 (accepted)',
    ct: 'application/json; charset=utf-8',
    body: json([ok({ id: 'cs1' })]),
    status: 200,
    code: '',
  },
  {
    name: 'charset=UTF-8 upper case (accepted)',
    ct: 'application/json; charset=UTF-8',
    body: json([ok({ id: 'cs2' })]),
    status: 200,
    code: '',
  },
  {
    name: 'charset=utf-16',
    ct: 'application/json; charset=utf-16',
    body: json([ok()]),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'charset=latin1',
    ct: 'application/json; charset=latin1',
    body: json([ok()]),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'NDJSON charset=iso-8859-1',
    ct: 'application/x-ndjson; charset=iso-8859-1',
    body: json(ok()),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'application/json-seq',
    ct: 'application/json-seq',
    body: json([ok()]),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'multipart/form-data',
    ct: 'multipart/form-data; boundary=x',
    body: '--x--',
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'Content-Encoding: gzip claim on plain JSON',
    body: json([ok()]),
    headers: { 'content-encoding': 'gzip' },
    status: 415,
    code: 'GW_ERR_ENCODING_UNSUPPORTED',
  },
  {
    name: 'Content-Encoding: deflate',
    body: json([ok()]),
    headers: { 'content-encoding': 'deflate' },
    status: 415,
    code: 'GW_ERR_ENCODING_UNSUPPORTED',
  },
  {
    name: 'Content-Encoding: br on NDJSON',
    ct: 'application/x-ndjson',
    body: json(ok()),
    headers: { 'content-encoding': 'br' },
    status: 415,
    code: 'GW_ERR_ENCODING_UNSUPPORTED',
  },
  {
    name: 'Content-Encoding: identity (accepted)',
    body: json([ok({ id: 'ident1' })]),
    headers: { 'content-encoding': 'identity' },
    status: 200,
    code: '',
  },
  {
    name: 'Idempotency-Key 1000 chars',
    body: json([ok()]),
    headers: { 'idempotency-key': 'k'.repeat(1000) },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'Idempotency-Key with a control char',
    body: json([ok()]),
    headers: { 'idempotency-key': 'a\u0001b' },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'Idempotency-Key with a tab',
    body: json([ok()]),
    headers: { 'idempotency-key': 'a\tb' },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'Idempotency-Key with DEL',
    body: json([ok()]),
    headers: { 'idempotency-key': 'a\u007fb' },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'Idempotency-Key empty',
    body: json([ok()]),
    headers: { 'idempotency-key': '' },
    status: 400,
    code: 'GW_ERR_IDEMPOTENCY_KEY_INVALID',
  },
  {
    name: 'Idempotency-Key 100 chars (accepted)',
    body: json([ok({ id: 'ik1' })]),
    headers: { 'idempotency-key': 'k'.repeat(100) },
    status: 200,
    code: '',
  },
  {
    name: 'VIN letter in position 9 (accepted, no check)',
    url: '/v1/vehicles/WVWZZZ1JZXW000001/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 200,
    code: '',
  },
  {
    name: 'VIN all zeros (check digit 0, accepted)',
    url: '/v1/vehicles/00000000000000000/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 200,
    code: '',
  },
  {
    name: 'VIN one lower-case letter',
    url: '/v1/vehicles/1M8GDM9AXkP042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN with encoded space',
    url: '/v1/vehicles/1M8GDM9AX%20P042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN with encoded NUL',
    url: '/v1/vehicles/1M8GDM9AX%00P042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN unicode look-alike',
    url: '/v1/vehicles/1M8GDM9AX%D0%9AP042788/telemetry',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'VIN 200 chars',
    url: `/v1/vehicles/${'A'.repeat(200)}/telemetry`,
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_VIN_INVALID',
  },
  {
    name: 'vehicle route: item names id',
    url: `/v1/vehicles/${VALID_VIN}/telemetry`,
    body: json([{ id: VALID_VIN, ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_BATCH_REJECTED',
    first: 'GW_ERR_ITEM_UNKNOWN_PROPERTY',
  },
  {
    name: 'sensor route: encoded control char id',
    url: '/v1/sensors/a%01b/readings',
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'sensor route: 1000-char id',
    url: `/v1/sensors/${'s'.repeat(1000)}/readings`,
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
  {
    name: 'sensor route: 5000-char id (router limit)',
    url: `/v1/sensors/${'s'.repeat(5000)}/readings`,
    body: json([{ ts: NOW, fields: { a: 1 } }]),
    status: 400,
    code: 'GW_ERR_PARAMS_INVALID',
  },
  {
    name: 'state: 5000-char id (router limit)',
    method: 'GET',
    url: `/v1/entities/sensor/${'s'.repeat(5000)}/state`,
    status: 400,
    code: 'GW_ERR_PARAMS_INVALID',
  },
  {
    name: 'charset twice, utf-8 first',
    ct: 'application/json; charset=utf-8; charset=latin1',
    body: json([ok()]),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'charset twice, both utf-8',
    ct: 'application/json; charset=utf-8; Charset=UTF-8',
    body: json([ok()]),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'NDJSON charset twice',
    ct: 'application/x-ndjson; charset=utf-8; charset=latin1',
    body: json(ok()),
    status: 415,
    code: 'GW_ERR_MEDIA_TYPE',
  },
  {
    name: 'charset quoted utf-8 (accepted)',
    ct: 'application/json; charset="utf-8"',
    body: json([ok({ id: 'cs3' })]),
    status: 200,
    code: '',
  },
  {
    name: 'sensor route: empty batch',
    url: '/v1/sensors/s1/readings',
    body: '[]',
    status: 400,
    code: 'GW_ERR_BATCH_EMPTY',
  },
  {
    name: 'state: kind upper case',
    method: 'GET',
    url: '/v1/entities/SENSOR/x/state',
    status: 400,
    code: 'GW_ERR_KIND_INVALID',
  },
  {
    name: 'state: encoded unicode id',
    method: 'GET',
    url: '/v1/entities/sensor/%E2%80%AEab/state',
    status: 400,
    code: 'GW_ERR_ID_INVALID',
  },
]

/** Auth header malformations with auth on: [name, headers]; every one is 401 GW_ERR_UNAUTHENTICATED. */
const AUTH_CASES: [string, Record<string, string | string[]>][] = [
  ['no credential', {}],
  ['Authorization: Device with no token', { authorization: 'Device' }],
  ['Authorization: Device with a space only', { authorization: 'Device ' }],
  ['Device token garbage', { authorization: 'Device garbage' }],
  ['Device token well-formed but unknown', { authorization: `Device dc_${'0'.repeat(24)}.${'A'.repeat(43)}` }],
  ['Bearer with no token', { authorization: 'Bearer' }],
  ['Bearer with garbage', { authorization: 'Bearer not.a.jwt' }],
  [
    'Bearer alg none',
    {
      authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x","role":"admin"}').toString('base64url')}.`,
    },
  ],
  ['lower-case scheme', { authorization: 'bearer x' }],
  ['Basic scheme', { authorization: 'Basic YWRtaW46YWRtaW4=' }],
  ['two Authorization headers', { authorization: ['Bearer a', 'Bearer b'] }],
  ['Authorization and X-API-Key', { authorization: 'Bearer a', 'x-api-key': 'k' }],
  ['two X-API-Key headers', { 'x-api-key': ['a', 'b'] }],
  ['unknown X-API-Key', { 'x-api-key': 'nope' }],
  ['empty X-API-Key', { 'x-api-key': '' }],
]

t.test('bad input with auth on: malformed credentials are 401 GW_ERR_UNAUTHENTICATED, nothing stored', async (t) => {
  const { app, count } = await setupGateway(t, {
    auth: { jwtSecret: 'j'.repeat(40) },
    runtime: { workerId: 'gw-bad-auth' },
  })
  for (const [name, headers] of AUTH_CASES) {
    const res = await app.inject({ method: 'POST', url: '/v1/readings', headers, payload: [ok()] })
    t.equal(res.statusCode, 401, `${name}: status`)
    t.equal(res.json<{ code: string }>().code, 'GW_ERR_UNAUTHENTICATED', `${name}: code`)
  }
  t.equal(await count(), 0, 'nothing stored')
})

t.test('bad input: documented status and code, valid readings of mixed batches all stored', async (t) => {
  const { app, count } = await setupGateway(t, {
    auth: false,
    gw: { bodyLimitBytes: 65_536, maxItemsPerBatch: 50, publishTimeoutMs: 2_000, queryTimeoutMs: 200 },
  })
  let accepted = 0
  type Reply = { code?: string; message?: string; accepted?: number; rejected?: { index: number; code: string }[] }

  for (const [name, item, code] of ITEM_CASES) {
    t.test(`item: ${name}`, async (t) => {
      let res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [item] })
      t.equal(res.statusCode, 400, 'alone: 400')
      let body = res.json<Reply>()
      t.equal(body.code, 'GW_ERR_BATCH_REJECTED')
      t.equal(body.rejected?.[0]?.code, code, 'alone: item code')
      res = await app.inject({ method: 'POST', url: '/v1/readings', payload: [ok({ id: `v${accepted}` }), item] })
      t.equal(res.statusCode, 200, 'mixed: 200')
      body = res.json<Reply>()
      t.equal(body.accepted, 1, 'mixed: the valid reading accepted')
      t.same(
        body.rejected?.map((r) => [r.index, r.code]),
        [[1, code]],
        'mixed: the bad one listed with its index',
      )
      accepted += body.accepted ?? 0
    })
  }
  for (const c of REQ_CASES) {
    t.test(`request: ${c.name}`, async (t) => {
      const res = await app.inject({
        method: c.method ?? 'POST',
        url: c.url ?? '/v1/readings',
        headers: { ...(c.body !== undefined ? { 'content-type': c.ct ?? 'application/json' } : {}), ...c.headers },
        ...(c.body !== undefined ? { payload: c.body } : {}),
      })
      t.equal(res.statusCode, c.status, `status: ${res.body.slice(0, 160)}`)
      const body = res.json<Reply>()
      if (c.code) t.equal(body.code, c.code, 'code')
      if (c.status >= 400) t.type(body.message, 'string', 'message')
      if (c.first) t.equal(body.rejected?.[0]?.code, c.first, 'first rejected item code')
      accepted += body.accepted ?? 0
    })
  }
  t.test('nothing valid lost, nothing invalid stored, still serving', async (t) => {
    t.ok(
      ITEM_CASES.length + REQ_CASES.length + AUTH_CASES.length >= 210,
      `${ITEM_CASES.length + REQ_CASES.length} cases`,
    )
    t.equal(await count(), accepted, `stream holds exactly the ${accepted} accepted readings`)
    t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  })
})

/**
 * Scoped ingest with auth on: [name, scope claims, item, code] for `POST /v1/readings` by a fleet/site-scoped
 * operator (fleet acme: sensor s1 and the vehicle; site b: sensor s2). `code` '' means accepted. Each runs
 * alone and next to an in-scope reading; the stream must hold exactly the accepted ones.
 */
const SCOPE_VIN = '1M8GDM9AXKP042788'
const SCOPE_CASES: [string, Record<string, string[]>, Record<string, unknown>, string][] = [
  ["another fleet's sensor", { fleets: ['acme'] }, { kind: 'sensor', id: 's2' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['unregistered sensor', { fleets: ['acme'] }, { kind: 'sensor', id: 'ghost' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['unregistered vehicle', { fleets: ['acme'] }, { kind: 'vehicle', id: '1HGCM82633A004352' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['own sensor id as a vehicle', { fleets: ['acme'] }, { kind: 'vehicle', id: 's1' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['own vehicle id as a sensor', { fleets: ['acme'] }, { kind: 'sensor', id: SCOPE_VIN }, 'GW_ERR_OUT_OF_SCOPE'],
  ['id in another case', { fleets: ['acme'] }, { kind: 'sensor', id: 'S1' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['id that is the fleet name', { fleets: ['acme'] }, { kind: 'sensor', id: 'acme' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['empty fleets list', { fleets: [] }, { kind: 'sensor', id: 's1' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['site scope: sensor of another site', { sites: ['b'] }, { kind: 'sensor', id: 's1' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['site scope: vehicles have no site', { sites: ['b'] }, { kind: 'vehicle', id: SCOPE_VIN }, 'GW_ERR_OUT_OF_SCOPE'],
  ['fleet name in sites', { sites: ['acme'] }, { kind: 'sensor', id: 's1' }, 'GW_ERR_OUT_OF_SCOPE'],
  ['site name in fleets', { fleets: ['b'] }, { kind: 'sensor', id: 's2' }, 'GW_ERR_OUT_OF_SCOPE'],
  [
    'injection-looking fleet claim',
    { fleets: ["acme' OR '1'='1"] },
    { kind: 'sensor', id: 's1' },
    'GW_ERR_OUT_OF_SCOPE',
  ],
  [
    'injection-looking id (invalid before scope)',
    { fleets: ['acme'] },
    { kind: 'sensor', id: "s1' OR '1'='1" },
    'GW_ERR_ID_INVALID',
  ],
  [
    'invalid item outside the scope keeps its validation code',
    { fleets: ['acme'] },
    { kind: 'sensor', id: 's2', ts: 'x' },
    'GW_ERR_TS_INVALID',
  ],
  ['own sensor (accepted)', { fleets: ['acme'] }, { kind: 'sensor', id: 's1' }, ''],
  ['own vehicle (accepted)', { fleets: ['acme'] }, { kind: 'vehicle', id: SCOPE_VIN }, ''],
  ['site b sensor (accepted)', { sites: ['b'] }, { kind: 'sensor', id: 's2' }, ''],
  ['fleet or site: either grants (accepted)', { fleets: ['nobody'], sites: ['b'] }, { kind: 'sensor', id: 's2' }, ''],
]

t.test("bad input with auth on: a scoped person's items outside the scope are rejected, by index", async (t) => {
  const { app, count } = await setupGateway(t, { runtime: { workerId: 'gw-bad-scope' } })
  const admin = bearer('admin')
  for (const [url, body] of [
    ['/v1/customers', { id: 'acme', name: 'Acme' }],
    ['/v1/customers', { id: 'beta', name: 'Beta' }],
    ['/v1/sensors', { id: 's1', type: 'temp', profile: 'environment', site: 'a', customerId: 'acme' }],
    ['/v1/sensors', { id: 's2', type: 'temp', profile: 'environment', site: 'b', customerId: 'beta' }],
    ['/v1/vehicles', { vin: SCOPE_VIN, brand: 'Volvo', model: 'FH', year: 2020, profile: 'road', customerId: 'acme' }],
  ] as const)
    t.equal((await app.inject({ method: 'POST', url, headers: admin, payload: body })).statusCode, 201)
  const reading = (over: Record<string, unknown>): Record<string, unknown> => ({
    ts: Date.now(),
    fields: { temperature: 20 },
    ...over,
  })
  let accepted = 0
  type Reply = { code?: string; accepted?: number; rejected?: { index: number; code: string }[] }
  for (const [name, claims, item, code] of SCOPE_CASES) {
    const headers = bearer('operator', claims)
    // the in-scope companion: s1 for fleet acme, s2 for site b, none for an empty or bogus scope
    const mate = claims.fleets?.includes('acme') ? 's1' : claims.sites?.includes('b') ? 's2' : undefined
    let res = await app.inject({ method: 'POST', url: '/v1/readings', headers, payload: [reading(item)] })
    let body = res.json<Reply>()
    if (code === '') {
      t.equal(res.statusCode, 200, `${name}: accepted`)
      t.equal(body.accepted, 1, `${name}: one stored`)
    } else {
      t.equal(res.statusCode, 400, `${name}: alone 400`)
      t.equal(body.code, 'GW_ERR_BATCH_REJECTED', `${name}: batch rejected`)
      t.same(
        body.rejected?.map((r) => [r.index, r.code]),
        [[0, code]],
        `${name}: ${code}`,
      )
    }
    accepted += body.accepted ?? 0
    if (mate === undefined || code === '') continue
    res = await app.inject({
      method: 'POST',
      url: '/v1/readings',
      headers,
      payload: [reading({ kind: 'sensor', id: mate }), reading(item), reading({ kind: 'sensor', id: mate })],
    })
    body = res.json<Reply>()
    t.equal(res.statusCode, 200, `${name}: mixed 200`)
    t.equal(body.accepted, 2, `${name}: mixed, both in-scope readings accepted`)
    t.same(
      body.rejected?.map((r) => [r.index, r.code]),
      [[1, code]],
      `${name}: mixed, the item listed with its index`,
    )
    accepted += body.accepted ?? 0
  }
  // device routes: the path entity is checked before the body is read, 404 as on the query routes
  for (const [url, claims, item] of [
    ['/v1/sensors/s2/readings', { fleets: ['acme'] }, 'params.id'],
    ['/v1/sensors/ghost/readings', { fleets: ['acme'] }, 'params.id'],
    [`/v1/vehicles/${SCOPE_VIN}/telemetry`, { sites: ['a'] }, 'params.vin'],
    ['/v1/vehicles/1HGCM82633A004352/telemetry', { fleets: ['acme'] }, 'params.vin'],
  ] as const) {
    const res = await app.inject({
      method: 'POST',
      url,
      headers: { ...bearer('operator', claims), 'content-type': 'application/json' },
      payload: '{not json',
    })
    t.equal(res.statusCode, 404, `${url}: 404 before the (malformed) body is read`)
    t.match(res.json(), { code: 'GW_ERR_NOT_FOUND', item }, `${url}: GW_ERR_NOT_FOUND ${item}`)
  }
  const bad = await app.inject({
    method: 'POST',
    url: '/v1/vehicles/1M8GDM9AXKP04278X/telemetry',
    headers: bearer('operator', { fleets: ['acme'] }),
    payload: [reading({})],
  })
  t.equal(bad.json<Reply>().code, 'GW_ERR_VIN_INVALID', 'an invalid VIN is reported as such before the scope')
  t.equal(await count(), accepted, `stream holds exactly the ${accepted} accepted readings`)
})
