/**
 * The webhook SSRF guard: a subscription's URL may not point the gateway at its own network. Loopback, private,
 * shared (CGNAT), link-local (where the cloud metadata services answer), multicast and reserved addresses are
 * refused, unless the deployment lists the ranges its internal receivers use (`PITWALL_NOTIFY_ALLOW_PRIVATE`,
 * docs/configuration.md). The guard runs twice (gateway/README.md, Notifications):
 * - when a subscription is created or its URL changed: an IP literal or a name that resolves to a refused address
 *   gets `400 GW_ERR_WEBHOOK_URL_FORBIDDEN` (a name that does not resolve is accepted: it is checked at delivery);
 * - at every delivery, on the address the connection is actually made to (the `lookup` hook of the socket), so a
 *   name re-pointed after the check (DNS rebinding) is refused too. Redirects are never followed.
 * Addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the IPv4 address they embed.
 */
import { lookup as dnsLookup } from 'node:dns'
import { BlockList, isIP, type LookupFunction } from 'node:net'

type Family = 'ipv4' | 'ipv6'
interface Range {
  readonly net: string
  readonly bits: number
  readonly why: string
}

/** What is refused, and why (the reason goes into the error and the delivery log). */
export const REFUSED_RANGES: Readonly<Record<Family, readonly Range[]>> = {
  ipv4: [
    { net: '0.0.0.0', bits: 8, why: 'this-network' },
    { net: '10.0.0.0', bits: 8, why: 'private' },
    { net: '100.64.0.0', bits: 10, why: 'shared (CGNAT; 100.100.100.200 is a cloud metadata address)' },
    { net: '127.0.0.0', bits: 8, why: 'loopback' },
    { net: '168.63.129.16', bits: 32, why: 'cloud metadata (Azure)' },
    { net: '169.254.0.0', bits: 16, why: 'link-local (169.254.169.254 is the cloud metadata address)' },
    { net: '172.16.0.0', bits: 12, why: 'private' },
    { net: '192.0.0.0', bits: 24, why: 'IETF protocol assignments' },
    { net: '192.168.0.0', bits: 16, why: 'private' },
    { net: '198.18.0.0', bits: 15, why: 'benchmarking' },
    { net: '224.0.0.0', bits: 4, why: 'multicast' },
    { net: '240.0.0.0', bits: 4, why: 'reserved or broadcast' },
  ],
  ipv6: [
    { net: '::', bits: 128, why: 'unspecified' },
    { net: '::1', bits: 128, why: 'loopback' },
    { net: '100::', bits: 64, why: 'discard-only' },
    { net: 'fc00::', bits: 7, why: 'unique local (private; fd00:ec2::254 is a cloud metadata address)' },
    { net: 'fe80::', bits: 10, why: 'link-local' },
    { net: 'fec0::', bits: 10, why: 'site-local' },
    { net: 'ff00::', bits: 8, why: 'multicast' },
  ],
}

/** A refused address: the reason, for the coded error and the delivery log. */
export class AddressRefused extends Error {
  readonly code = 'NOTIFY_ADDRESS_REFUSED'
  constructor(
    readonly address: string,
    readonly why: string,
  ) {
    super(
      `address ${address} is ${why}; webhooks to it are refused (PITWALL_NOTIFY_ALLOW_PRIVATE lists ranges to allow)`,
    )
    this.name = 'AddressRefused'
  }
}

/** Parses `a.b.c.d/n` or `x::y/n` (a bare address is /32 or /128); undefined when it is not one. */
export function parseCidr(raw: string): { net: string; bits: number; family: Family } | undefined {
  const [net = '', bits, extra] = raw.trim().split('/')
  const v = isIP(net)
  if (v === 0 || extra !== undefined) return undefined
  const max = v === 4 ? 32 : 128
  const n = bits === undefined ? max : /^[0-9]{1,3}$/.test(bits) ? Number(bits) : NaN
  if (!(n >= 0 && n <= max)) return undefined
  return { net, bits: n, family: v === 4 ? 'ipv4' : 'ipv6' }
}

/** The eight 16-bit groups of an IPv6 address (with an embedded dotted quad, if any, expanded). */
function groups6(addr: string): number[] {
  let a = addr.toLowerCase()
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a)
  if (dotted?.[1]) {
    const [p, q, r, s] = dotted[1].split('.').map(Number) as [number, number, number, number]
    a = `${a.slice(0, -dotted[1].length)}${((p << 8) | q).toString(16)}:${((r << 8) | s).toString(16)}`
  }
  const [head = '', tail] = a.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0')
  return [...h, ...zeros, ...t].map((g) => parseInt(g, 16))
}

const quad = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`

/** The IPv4 address an IPv6 address carries (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16), if any. */
export function embeddedIpv4(addr: string): string | undefined {
  const g = groups6(addr)
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number]
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) return quad(g6, g7)
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return quad(g6, g7)
  if (g0 === 0x2002) return quad(g1, g2)
  return undefined
}

/** Which addresses a webhook may reach: everything but REFUSED_RANGES, plus the allowed ranges. */
export class AddressPolicy {
  private readonly refused: { list: BlockList; why: string }[] = []
  private readonly allowed = new BlockList()

  /** `allow`: CIDRs (checked by compileNotify) whose addresses are permitted although REFUSED_RANGES has them. */
  constructor(readonly allow: readonly string[] = []) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      for (const r of REFUSED_RANGES[family]) {
        const list = new BlockList()
        list.addSubnet(r.net, r.bits, family)
        this.refused.push({ list, why: r.why })
      }
    }
    for (const c of allow) {
      const p = parseCidr(c)
      if (p) this.allowed.addSubnet(p.net, p.bits, p.family)
    }
  }

  /** Why `address` (an IP literal) is refused, or undefined when a webhook may reach it. */
  refusal(address: string): string | undefined {
    const v = isIP(address)
    if (v === 0) return 'not an IP address'
    const family: Family = v === 4 ? 'ipv4' : 'ipv6'
    if (family === 'ipv6') {
      const v4 = embeddedIpv4(address)
      if (v4 !== undefined) return this.refusal(v4)
    }
    if (this.allowed.check(address, family)) return undefined
    return this.refused.find((r) => r.list.check(address, family))?.why
  }

  /** Throws AddressRefused when `address` is refused. */
  check(address: string): void {
    const why = this.refusal(address)
    if (why !== undefined) throw new AddressRefused(address, why)
  }

  /**
   * Checks a URL's host when a subscription is written: an IP literal directly, a name by resolving it now
   * (`localhost` and `*.localhost` are loopback by definition, RFC 6761). Resolution errors are not refusals.
   */
  async checkHost(hostname: string, resolve: (host: string) => Promise<string[]> = resolveAll): Promise<void> {
    const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
    if (isIP(host) !== 0) return this.check(host)
    const name = host.toLowerCase().replace(/\.$/, '')
    if (name === 'localhost' || name.endsWith('.localhost')) return this.check('127.0.0.1')
    let addrs: string[]
    try {
      addrs = await resolve(name)
    } catch {
      return
    }
    for (const a of addrs) this.check(a)
  }

  /**
   * A `lookup` for http(s).request: resolves like the system does and fails the connection with AddressRefused
   * when any address the name resolves to is refused (a name that mixes public and refused addresses is refused).
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
      if (err) return callback(err, '', 0)
      const bad = addrs.find((a) => this.refusal(a.address) !== undefined)
      if (bad) return callback(new AddressRefused(bad.address, this.refusal(bad.address) ?? ''), '', 0)
      const first = addrs[0]
      if (options.all) (callback as unknown as (e: null, a: typeof addrs) => void)(null, addrs)
      else callback(null, first?.address ?? '', first?.family ?? 4)
    })
  }
}

/** Every address a name resolves to (the system resolver, like the delivery's connection uses), within 2 s. */
async function resolveAll(host: string): Promise<string[]> {
  const addrs = new Promise<string[]>((resolve, reject) => {
    dnsLookup(host, { all: true }, (err, a) => {
      if (err) reject(err)
      else resolve(a.map((x) => x.address))
    })
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error('DNS timeout'))
    }, 2_000)
  })
  try {
    return await Promise.race([addrs, timeout])
  } finally {
    clearTimeout(timer)
  }
}
