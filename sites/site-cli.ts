/**
 * `pitwall site <command> [flags]` (docs/sites.md, "Operating two sites"): status, failover, failback and
 * assume-peer-lost, for the operator. What a command needs to know about the site comes from flags, from a
 * site definition file (`--topology <file.json> --site <s>`, checked with validateTopology), or, as a fallback,
 * from the PITWALL_* variables the site's workers use; flags win. A home list that overlaps, leaves a partition
 * without its home or contradicts the topology or the site's recorded map and partition records is refused
 * with PW_CONFIG_INVALID naming the flag.
 *
 * Exported for tests (`siteMain`): cmd/pitwall.ts calls it with process.argv and process.env.
 */
import { readFile } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { type KV, Kvm } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import {
  checkDeployment,
  type CommandSpec,
  compileConfig,
  ConfigError,
  connectNats,
  defaultChain,
  epochOf,
  mirrorLags,
  OVERRIDE_DEFAULT_MS,
  optionsFromEnv,
  parseCommand,
  parseRanges,
  partitionKey,
  peerReachable,
  peerStreams,
  position,
  ranges,
  readOverride,
  readOwnMap,
  readPeerKey,
  readPeerMap,
  readRecord,
  readRelay,
  seqOf,
  SITE_OVERRIDE_KEY,
  SiteMapView,
  siteRole,
  SYS_KIND,
  takeBack,
  takeOver,
  TICK_ID,
  writeOverride,
  type MoveResult,
  type PartitionRecord,
  type RuntimeConfig,
  type RuntimeOptions,
  type SiteOverride,
} from '../actors/mod.js'
import { clientUrls, peerOf, siteOf, type Topology, validateTopology } from './topology.js'

export interface SiteIo {
  out: (line: string) => void
  err: (line: string) => void
  /** Reads a --topology file (tests may pass their own). */
  readFile?: (path: string) => Promise<string>
}

/** Flags every `site` command takes: where the site is and what it is. */
const SITE_FLAGS: ReadonlyArray<readonly [string, string]> = [
  [
    '--topology <file.json>',
    'site definition file (docs/sites.md, "Topology fields"); with --site, gives every setting below',
  ],
  ['--site <name>', 'this site (PITWALL_SITE)'],
  ['--peer <name>', 'the peer site (PITWALL_PEER_SITE)'],
  ['--home <list>', 'partitions whose home is this site, e.g. 0-7 or 0-7,12 (PITWALL_HOME_PARTITIONS)'],
  ['--partitions <n>', 'number of partitions P (PITWALL_PARTITIONS)'],
  ['--nats <urls>', "this site's NATS servers, comma-separated (PITWALL_NATS_URL)"],
  ['--domain <d>', "this site's JetStream domain (PITWALL_DOMAIN; default the site name)"],
  ['--peer-domain <d>', "the peer's JetStream domain (PITWALL_PEER_DOMAIN; default the peer's name)"],
  [
    '--deployment <name>',
    'the deployment the site belongs to, checked against its streams and bucket (PITWALL_DEPLOYMENT; default "default")',
  ],
  ['--help', 'this help'],
]

interface Command {
  summary: string
  flags: ReadonlyArray<readonly [string, string]>
  booleans: readonly string[]
}

const COMMANDS: Record<string, Command> = {
  status: {
    summary: "this site's epoch, role, partitions, peer link, readings per stream (ticks apart), mirror lag and RPO",
    flags: [],
    booleans: [],
  },
  failover: {
    summary:
      "take the peer site's partitions now (the peer is lost); waits until every moved partition is processed again",
    flags: [['--wait-s <s>', 'wait this long for every moved partition to process again (default 60; 0: do not wait)']],
    booleans: [],
  },
  failback: {
    summary: 'at the home site, once it is back and linked: take its home partitions back from the peer (controlled)',
    flags: [
      [
        '--grace-s <s>',
        "how long producers have to follow the new map before the peer's segments are sealed (default 6.5)",
      ],
      ['--timeout-s <s>', 'give up waiting for the peer to release or for mirrors after this long (default 60)'],
      [
        '--wait-s <s>',
        'then wait this long for every partition taken back to process again (default 60; 0: do not wait)',
      ],
    ],
    booleans: [],
  },
  'assume-peer-lost': {
    summary: "let this site's workers take partitions without the peer's map (the peer is gone for good; audited)",
    flags: [
      ['--confirm', 'required: the peer is gone for good, not merely unreachable'],
      ['--reason <why>', 'required: recorded with who and when'],
      ['--for-min <n>', 'the override holds for workers starting in the next n minutes (default 60, 1..1440)'],
    ],
    booleans: ['--confirm'],
  },
}

const GENERAL_BOOLEANS = ['--help']

/** Usage of `pitwall site` or of one of its commands. */
export function siteHelp(sub?: string): string {
  const fmt = (flags: ReadonlyArray<readonly [string, string]>): string[] =>
    flags.map(([f, d]) => `  ${f.padEnd(24)} ${d}`)
  const c = sub ? COMMANDS[sub] : undefined
  if (sub && c) {
    return [
      `usage: pitwall site ${sub} [flags]`,
      `  ${c.summary}`,
      '',
      ...(c.flags.length > 0 ? ['flags:', ...fmt(c.flags), ''] : []),
      'site flags (flags win over the PITWALL_* variables):',
      ...fmt(SITE_FLAGS),
    ].join('\n')
  }
  return [
    'usage: pitwall site <command> [flags]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(24)} ${v.summary}`),
    '',
    'site flags (flags win over the PITWALL_* variables):',
    ...fmt(SITE_FLAGS),
    '',
    '`pitwall site <command> --help` lists the flags of a command.',
  ].join('\n')
}

/**
 * `--x value` / `--x=value` flags (node:util parseArgs through parseCommand); booleans take no value. An
 * unknown flag, one given twice, a flag without its value or a stray argument is a ConfigError naming it.
 */
export function parseFlags(
  args: readonly string[],
  known: readonly string[],
  booleans: readonly string[],
): Map<string, string> {
  const spec: CommandSpec = {
    usage: 'pitwall site <command> [flags]',
    summary: '',
    flags: [
      ...known.map((f) => ({ name: f.replace(/^--/, ''), type: 'string' as const, help: '' })),
      ...booleans
        .filter((f) => f !== '--help')
        .map((f) => ({ name: f.replace(/^--/, ''), type: 'boolean' as const, help: '' })),
    ],
  }
  const p = parseCommand(args, spec)
  if (p.help) return new Map([['--help', 'true']])
  const out = new Map<string, string>()
  for (const [k, v] of Object.entries(p.values)) {
    if (v === undefined || v === false) continue
    if (v === '') throw new ConfigError(`--${k}`, 'needs a value')
    out.set(`--${k}`, String(v))
  }
  return out
}

const flagName = (spec: string): string => spec.split(' ')[0] as string

/** A --home style list: partitions 0..P-1, none twice. */
export function parseHome(flag: string, text: string, partitions: number): number[] {
  const ps = parseRanges(flag, text)
  const seen = new Set<number>()
  for (const p of ps) {
    if (p >= partitions)
      throw new ConfigError(
        flag,
        `partition ${p} is outside 0..${partitions - 1} (P = ${partitions}), got ${JSON.stringify(text)}`,
      )
    if (seen.has(p))
      throw new ConfigError(flag, `partition ${p} is listed twice (overlapping ranges), got ${JSON.stringify(text)}`)
    seen.add(p)
  }
  if (ps.length === 0) throw new ConfigError(flag, 'lists no partition')
  return ps.sort((a, b) => a - b)
}

async function loadTopology(file: string, io: SiteIo): Promise<Topology> {
  let text: string
  try {
    text = await (io.readFile ?? ((f: string) => readFile(f, 'utf8')))(file)
  } catch (err) {
    throw new ConfigError('--topology', `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  let def: Topology
  try {
    def = JSON.parse(text) as Topology
  } catch (err) {
    throw new ConfigError(
      '--topology',
      `${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
      err,
    )
  }
  try {
    return validateTopology(def)
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError('--topology', `${file}: ${err.message}`, err)
    throw err
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/**
 * The runtime config of a `site` command: env, then the topology file, then flags (flags win). Everything that
 * names a flag is checked against the others: --home against the topology's homePartitions, --site and --peer
 * against its sites, --partitions against its P.
 */
export async function siteConfig(
  flags: Map<string, string>,
  env: Record<string, string | undefined>,
  io: SiteIo,
): Promise<RuntimeConfig> {
  const o: RuntimeOptions = optionsFromEnv(env)
  const file = flags.get('--topology')
  const siteFlag = flags.get('--site')
  if (siteFlag !== undefined) {
    // PITWALL_* of another site would point the command at that site's servers with this site's name.
    if (env.PITWALL_SITE && env.PITWALL_SITE !== siteFlag && !file && !flags.has('--nats')) {
      throw new ConfigError(
        '--site',
        `${JSON.stringify(siteFlag)} but PITWALL_SITE is ${JSON.stringify(env.PITWALL_SITE)}: the other PITWALL_* variables are that site's; pass --nats and --home too, or --topology`,
      )
    }
    o.site = siteFlag
  }
  let topoHome: number[] | undefined
  if (file) {
    const topo = await loadTopology(file, io)
    if (!o.site)
      throw new ConfigError('--site', `which site of ${file}? (${topo.sites.map((s) => s.name).join(' or ')})`)
    let me
    try {
      me = siteOf(topo, o.site)
    } catch (err) {
      throw new ConfigError(
        '--site',
        `${err instanceof ConfigError ? err.message.replace(/^site: /, '') : String(err)} in ${file}`,
      )
    }
    const peer = peerOf(topo, me.name)
    o.site = me.name
    o.natsUrl = clientUrls(me)
    o.domain = me.domain
    o.partitions = topo.partitions
    o.peer = { site: peer.name, domain: peer.domain }
    topoHome = [...me.homePartitions].sort((a, b) => a - b)
    o.homePartitions = topoHome
  }
  const partitions = flags.get('--partitions')
  if (partitions !== undefined) {
    const n = Number(partitions)
    if (!Number.isInteger(n) || n < 1 || n > 4096)
      throw new ConfigError('--partitions', `must be an integer 1..4096, got ${JSON.stringify(partitions)}`)
    if (file && n !== o.partitions)
      throw new ConfigError('--partitions', `${n} disagrees with ${file} (partitions ${o.partitions})`)
    o.partitions = n
  }
  const peer = flags.get('--peer')
  if (peer !== undefined) {
    if (file && peer !== o.peer?.site)
      throw new ConfigError(
        '--peer',
        `${JSON.stringify(peer)} disagrees with ${file} (the peer of ${o.site} is ${o.peer?.site})`,
      )
    o.peer = { site: peer, ...(o.peer?.site === peer && o.peer.domain ? { domain: o.peer.domain } : {}) }
  }
  const peerDomain = flags.get('--peer-domain')
  if (peerDomain !== undefined) {
    if (!o.peer) throw new ConfigError('--peer-domain', 'needs a peer site (--peer)')
    if (file && peerDomain !== o.peer.domain)
      throw new ConfigError('--peer-domain', `${JSON.stringify(peerDomain)} disagrees with ${file} (${o.peer.domain})`)
    o.peer = { site: o.peer.site, domain: peerDomain }
  }
  const domain = flags.get('--domain')
  if (domain !== undefined) {
    if (file && domain !== o.domain)
      throw new ConfigError('--domain', `${JSON.stringify(domain)} disagrees with ${file} (${o.domain})`)
    o.domain = domain
  }
  const nats = flags.get('--nats')
  if (nats !== undefined) o.natsUrl = nats
  const deployment = flags.get('--deployment')
  if (deployment !== undefined) o.deployment = deployment
  const P = o.partitions ?? 16
  const home = flags.get('--home')
  if (home !== undefined) {
    const ps = parseHome('--home', home, P)
    if (topoHome && !sameList(ps, topoHome)) {
      throw new ConfigError(
        '--home',
        `${JSON.stringify(home)} disagrees with ${file}: the home partitions of ${o.site} are ${ranges(topoHome)}`,
      )
    }
    o.homePartitions = ps
  } else if (!topoHome && env.PITWALL_HOME_PARTITIONS) {
    // The variable is checked like the flag (overlaps and range), naming the variable.
    o.homePartitions = parseHome('PITWALL_HOME_PARTITIONS', env.PITWALL_HOME_PARTITIONS, P)
  }
  if (!o.peer)
    throw new ConfigError(
      '--peer',
      'pitwall site needs the peer site: --peer <name> or --topology <file> --site <name> (or PITWALL_PEER_SITE); this deployment has one site otherwise',
    )
  if (o.homePartitions === undefined)
    throw new ConfigError(
      '--home',
      `this site's home partitions are required, e.g. --home 0-${Math.max(0, Math.floor(P / 2) - 1)} (or --topology, or PITWALL_HOME_PARTITIONS)`,
    )
  try {
    return compileConfig(o)
  } catch (err) {
    // Name the flag the operator typed, not the internal setting.
    const toFlag: Record<string, string> = {
      site: '--site',
      natsUrl: '--nats',
      partitions: '--partitions',
      'peer.site': '--peer',
      'peer.domain': '--peer-domain',
      domain: '--domain',
      homePartitions: '--home',
      deployment: '--deployment',
    }
    if (err instanceof ConfigError && toFlag[err.setting])
      throw new ConfigError(toFlag[err.setting] as string, err.message.slice(err.setting.length + 2), err)
    throw err
  }
}

/**
 * The home site of each partition as this site recorded it: a partition the recorded map (ours or the peer's,
 * mirrored) shows unmoved since epoch 0 is at home with its owner; a partition record's chain starts with the
 * home site's epoch-0 segment. Nothing recorded (a first start): an empty map.
 */
export async function recordedHomes(
  kv: KV,
  jsm: JetStreamManager,
  cfg: RuntimeConfig,
): Promise<Map<number, { site: string; from: string }>> {
  const homes = new Map<number, { site: string; from: string }>()
  const own = await readOwnMap(kv)
  const peerMap = await readPeerMap(jsm, cfg).catch(() => undefined)
  for (const [m, from] of [
    [own?.map, `${cfg.site}'s site map`],
    [peerMap, `${cfg.peer?.site}'s site map`],
  ] as const) {
    if (!m || m.owners.length !== cfg.partitions) continue
    m.owners.forEach((s, p) => {
      if (m.since[p] === 0 && !homes.has(p)) homes.set(p, { site: s, from: `${from} (epoch ${m.epoch})` })
    })
  }
  for (let p = 0; p < cfg.partitions; p++) {
    if (homes.has(p)) continue
    // Our record, else the peer's (mirrored): a record that never moved has no chain.
    const mine = (await readRecord(kv, p))?.record
    const m = await readPeerKey(jsm, cfg, partitionKey(p)).catch(() => undefined)
    const theirs = m ? (JSON.parse(new TextDecoder().decode(m.data)) as PartitionRecord) : undefined
    const first = [mine, theirs].map((r) => r?.segments?.[0]).find((s) => s?.epoch === 0)
    if (first) homes.set(p, { site: first.site, from: `the chain of partition ${p}` })
  }
  return homes
}

/** Refuses a home list that contradicts what the site recorded (the flag, or the variable, is named). */
export async function checkHome(kv: KV, jsm: JetStreamManager, cfg: RuntimeConfig, setting: string): Promise<void> {
  const recorded = await recordedHomes(kv, jsm, cfg)
  if (recorded.size === 0) return
  const given = new Set(cfg.homePartitions)
  for (const [p, h] of [...recorded].sort((a, b) => a[0] - b[0])) {
    if (given.has(p) && h.site !== cfg.site) {
      throw new ConfigError(
        setting,
        `${ranges(cfg.homePartitions)} includes partition ${p}, whose home is ${h.site} by ${h.from}`,
      )
    }
    if (!given.has(p) && h.site === cfg.site) {
      throw new ConfigError(
        setting,
        `${ranges(cfg.homePartitions)} leaves out partition ${p}, whose home is ${cfg.site} by ${h.from}: it would have no home site`,
      )
    }
  }
}

export interface ReadingCounts {
  stream: string
  messages: number
  ticks: number
  readings: number
  lastSeq: number
}

/** Readings vs `_sys.tick` messages of a TLM stream (or mirror) holding site `site`'s subjects. */
export async function readingCounts(
  jsm: JetStreamManager,
  stream: string,
  site: string,
): Promise<ReadingCounts | undefined> {
  const info = await jsm.streams
    .info(stream, { subjects_filter: `tlm.${site}.*.${SYS_KIND}.${TICK_ID}` })
    .catch(() => undefined)
  if (!info) return undefined
  const ticks = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0)
  return {
    stream,
    messages: info.state.messages,
    ticks,
    readings: info.state.messages - ticks,
    lastSeq: info.state.last_seq,
  }
}

/**
 * Readings (`_sys.tick` messages excluded) of `stream` matching `filter` with from <= seq < end, read one by one
 * (an ordered consumer) up to the last matching message when looked at, so that a stream still growing cannot
 * skew the count. (A consumer's pending count is not used: nats-server 2.9 reports it wrong for a filtered
 * consumer that starts at a sequence.) Ranges are what was never mirrored or never applied, normally small.
 */
export async function readingsBetween(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  from: number,
  end: number,
): Promise<number> {
  if (end <= from) return 0
  const last = await jsm.streams.getMessage(stream, { last_by_subj: filter }).then(
    (m) => m?.seq ?? 0,
    (err: unknown) => {
      if (/no message found|not found|10037/i.test(String(err))) return 0
      throw err
    },
  )
  if (last < from) return 0
  const c = await js.consumers.get(stream, { filter_subjects: filter, opt_start_seq: from })
  const it = await c.consume({ max_messages: 1_000 })
  const idle = setTimeout(() => it.stop(), 10_000)
  let n = 0
  try {
    for await (const m of it) {
      if (m.seq >= end) break
      idle.refresh()
      if (!m.subject.endsWith(`.${SYS_KIND}.${TICK_ID}`)) n++
      if (m.seq >= last || m.seq + 1 >= end) break
    }
  } finally {
    clearTimeout(idle)
    it.stop()
  }
  return n
}

export interface PendingStrays {
  /** Readings in no segment of their partition's chain and not forwarded by the relay of the site holding them. */
  readings: number
  /** Per site that could be read (this site; the peer over the link). */
  bySite: Record<string, number>
}

/**
 * Readings acknowledged and not applied yet, counted by sequence: for each partition and each site X, the
 * messages of X's TLM for it that no segment of its chain covers (strays: sent to X while X did not own it, or
 * past the seal of X's segment: the unmirrored tail of a lost site) and that X's stray relay has not forwarded
 * (past `relay.<p>`.last). X's relay (its controller) forwards them, or X's next segment reads them when the
 * partition moves to X (actors/relay.ts). A failover's recovery point shows here once the lost site is back.
 * Ticks are excluded. The peer's stream and relay are read over the link; with the link down it is left out.
 */
export async function pendingStrays(
  nc: NatsConnection,
  jsm: JetStreamManager,
  kv: KV,
  cfg: RuntimeConfig,
  map: { owners: string[] },
  linkUp: boolean,
): Promise<PendingStrays> {
  const peer = cfg.peer
  const sites: Array<{ site: string; js: JetStreamClient; jsm: JetStreamManager; kv: KV }> = [
    { site: cfg.site, js: jetstream(nc), jsm, kv },
  ]
  if (linkUp && peer) {
    const pjs = jetstream(nc, { domain: peer.domain, timeout: 5_000 })
    sites.push({
      site: peer.site,
      js: pjs,
      jsm: await jetstreamManager(nc, { domain: peer.domain, timeout: 5_000, checkAPI: false }),
      kv: await new Kvm(pjs).open(cfg.streams.stateBucket),
    })
  }
  const res: PendingStrays = { readings: 0, bySite: {} }
  for (const x of sites) {
    // One end per stream, when first looked at: a stream still growing does not move it.
    const end = (await x.jsm.streams.info(cfg.streams.tlm)).state.last_seq + 1
    res.bySite[x.site] = 0
    for (let p = 0; p < cfg.partitions; p++) {
      const owner = map.owners[p] as string
      let rec: PartitionRecord | undefined
      if (owner === cfg.site) rec = (await readRecord(kv, p))?.record
      else {
        const m = await readPeerKey(jsm, cfg, partitionKey(p)).catch(() => undefined)
        rec = m ? (JSON.parse(new TextDecoder().decode(m.data)) as PartitionRecord) : undefined
      }
      const segs = (rec?.segments ?? defaultChain(owner))
        .filter((g) => g.site === x.site)
        .sort((g, h) => g.from - h.from)
      let from = ((await readRelay(x.kv, p))?.state.last ?? 0) + 1
      const ranges: Array<[number, number]> = []
      for (const g of segs) {
        if (g.from > from) ranges.push([from, Math.min(g.from, end)])
        from = Math.max(from, g.to === undefined ? Number.POSITIVE_INFINITY : g.to + 1)
      }
      if (from < end) ranges.push([from, end])
      for (const [a, b] of ranges) {
        const n = await readingsBetween(x.js, x.jsm, cfg.streams.tlm, `tlm.${x.site}.${p}.*.*`, a, b)
        res.bySite[x.site] = (res.bySite[x.site] ?? 0) + n
        res.readings += n
      }
    }
  }
  return res
}

const num = (flags: Map<string, string>, name: string, dflt: number, max: number): number => {
  const v = flags.get(name)
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0 || n > max)
    throw new ConfigError(name, `must be a number of seconds in [0, ${max}], got ${JSON.stringify(v)}`)
  return n
}

const fmtPos = (pos: number): string => (epochOf(pos) === 0 ? String(pos) : `${epochOf(pos)}:${seqOf(pos)}`)
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

/**
 * Waits until every moved partition is processed again: its record (this site's) has an owner and a cursor at
 * or past the first position of the new segment (the owner replayed up to the seal and applied a message of
 * its own new segment: a reading or its processing-time tick). Returns the ms from `t0` per partition; missing
 * ones timed out.
 */
export async function waitProcessing(
  kv: KV,
  parts: readonly number[],
  epoch: number,
  from: number,
  t0: number,
  timeoutMs: number,
  onPartition?: (p: number, ms: number, rec: PartitionRecord) => void,
): Promise<Map<number, number>> {
  const done = new Map<number, number>()
  const deadline = Date.now() + timeoutMs
  while (done.size < parts.length && Date.now() <= deadline) {
    for (const p of parts) {
      if (done.has(p)) continue
      const r = (await readRecord(kv, p))?.record
      if (r && r.owner !== null && (r.epoch ?? 0) >= epoch && r.cursor >= position(epoch, from)) {
        const ms = Date.now() - t0
        done.set(p, ms)
        onPartition?.(p, ms, r)
      }
    }
    if (done.size < parts.length) await new Promise((res) => setTimeout(res, 100))
  }
  return done
}

function overrideFromFlags(cfg: RuntimeConfig, flags: Map<string, string>, now = Date.now()): SiteOverride {
  const peer = cfg.peer?.site ?? '?'
  if (!flags.has('--site')) throw new ConfigError('--site', `must name this site (${cfg.site}) explicitly, got nothing`)
  if (!flags.has('--confirm')) {
    throw new ConfigError(
      '--confirm',
      `${cfg.site}'s workers would take partitions without ${peer}'s map: if ${peer} is alive behind a cut link and failed over, both sites process the same partitions; only for a peer that is gone for good. Repeat with --confirm`,
    )
  }
  const reason = flags.get('--reason')
  if (!reason) throw new ConfigError('--reason', 'say why the peer is gone for good (recorded with who and when)')
  const forMin = flags.get('--for-min')
  const minutes = forMin === undefined ? OVERRIDE_DEFAULT_MS / 60_000 : Number(forMin)
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 24 * 60)
    throw new ConfigError('--for-min', `an integer in [1, 1440], got ${forMin}`)
  let by = process.env.USER ?? process.env.LOGNAME ?? ''
  try {
    by ||= userInfo().username
  } catch {
    by ||= 'unknown'
  }
  return { site: cfg.site, by, host: hostname(), at: now, until: now + minutes * 60_000, reason }
}

/** `pitwall site <args...>`: returns the exit code (0 ok, 1 failed or timed out, 2 usage). */
export async function siteMain(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: SiteIo,
): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined || sub === '--help' || sub === 'help') {
    io.out(siteHelp())
    return sub === undefined ? 2 : 0
  }
  const command = COMMANDS[sub]
  if (!command) {
    io.err(`unknown command 'site ${sub}'\n${siteHelp()}`)
    return 2
  }
  const known = [...SITE_FLAGS, ...command.flags]
    .map(([f]) => flagName(f))
    .filter((f) => !command.booleans.includes(f) && !GENERAL_BOOLEANS.includes(f))
  const flags = parseFlags(rest, known, [...command.booleans, ...GENERAL_BOOLEANS])
  if (flags.has('--help')) {
    io.out(siteHelp(sub))
    return 0
  }
  const cfg = await siteConfig(flags, env, io)
  // Checked before anything is done (flags of another command were refused by parseFlags).
  const waitMs = num(flags, '--wait-s', 60, 3_600) * 1000
  const graceMs = num(flags, '--grace-s', 6.5, 600) * 1000
  const timeoutMs = num(flags, '--timeout-s', 60, 3_600) * 1000
  const homeSetting = flags.has('--home')
    ? '--home'
    : flags.has('--topology')
      ? '--topology'
      : 'PITWALL_HOME_PARTITIONS'
  const peer = cfg.peer as { site: string; domain: string }
  const nc = await connectNats(cfg.natsUrl, 'pitwall-cli')
  try {
    const jsm = await jetstreamManager(nc)
    // A failover or failback moves partitions: never on another deployment's NATS (PW_DEPLOYMENT_MISMATCH).
    await checkDeployment(nc, jsm, cfg)
    const domain = (await jsm.getAccountInfo()).domain
    if (domain !== undefined && domain !== cfg.domain) {
      throw new ConfigError(
        flags.has('--nats') ? '--nats' : flags.has('--topology') ? '--topology' : 'PITWALL_NATS_URL',
        `the servers at ${cfg.natsUrl} are JetStream domain ${domain}, not ${cfg.domain} (site ${cfg.site})`,
      )
    }
    const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
    await checkHome(kv, jsm, cfg, homeSetting)
    const view = new SiteMapView(cfg, kv, jsm)
    if (sub === 'status') return await status(nc, jsm, kv, view, cfg, io)
    if (sub === 'failover') return await failoverCommand(nc, kv, cfg, io, { waitMs })
    if (sub === 'failback') return await failbackCommand(nc, kv, cfg, io, { graceMs, timeoutMs, waitMs })
    const o = overrideFromFlags(cfg, flags)
    const revision = await writeOverride(kv, o)
    const link = await peerReachable(nc, peer.domain, 1_000)
    io.out(`recorded in ${cfg.streams.stateBucket}/${SITE_OVERRIDE_KEY} (revision ${revision}): ${JSON.stringify(o)}`)
    io.out(
      `workers of ${cfg.site} waiting for ${peer.site}'s map now take partitions by ${cfg.site}'s own map; workers starting after ${new Date(o.until).toISOString()} wait again`,
    )
    if (link)
      io.out(
        `warning: ${peer.site} answers over the link right now: workers sync its map anyway, the override changes nothing`,
      )
    else io.out(`next, if ${peer.site} held partitions: 'pitwall site failover' here to take them`)
    return 0
  } finally {
    await nc.close()
  }
}

/**
 * `pitwall site failover`, its steps and report: takes the peer's partitions (o.move, default takeOver) and waits
 * until they are processed again. The site controller's `POST /failover` runs the same function (its io collects
 * the lines for the console). Returns the exit code.
 */
export async function failoverCommand(
  nc: NatsConnection,
  kv: KV,
  cfg: RuntimeConfig,
  io: SiteIo,
  o: { waitMs: number; move?: () => Promise<MoveResult> },
): Promise<number> {
  const peer = cfg.peer as { site: string; domain: string }
  if (await peerReachable(nc, peer.domain, 1_000)) {
    io.out(
      `warning: ${peer.site} still answers over the link; failing over anyway (its workers release the partitions when they see epoch > theirs)`,
    )
  }
  const t0 = Date.now()
  const r = await (o.move ?? (() => takeOver(nc, cfg, 'operator failover')))()
  if (r.partitions.length === 0) {
    io.out(`nothing to take: ${peer.site} owns no partitions (epoch ${r.epoch})`)
    return 0
  }
  io.out(
    `failover: epoch ${r.epoch}, partitions ${ranges(r.partitions)} of ${peer.site} now owned by ${cfg.site} (records and map written in ${r.ms} ms; the workers take them at their next heartbeat)`,
  )
  io.out(
    `${peer.site}'s readings up to its TLM sequence ${r.sealedAt} (what reached ${cfg.site}'s mirror) are replayed; new readings of these partitions go to ${cfg.site}'s TLM from sequence ${r.from}`,
  )
  if (r.rewound)
    io.out(
      `partitions ${ranges(r.rewound)} start from an older record of ${peer.site} (its state mirror was ahead of its readings mirror)`,
    )
  if (r.strays) io.out(strayLine(cfg.site, r))
  io.out(rpoLine(peer.site, r))
  return await reportProcessing(kv, r, t0, o.waitMs, cfg, io, 'failover')
}

/** `pitwall site failback`: the controlled handover back to this (home) site; the controller's `POST /failback` too. */
export async function failbackCommand(
  nc: NatsConnection,
  kv: KV,
  cfg: RuntimeConfig,
  io: SiteIo,
  o: { graceMs: number; timeoutMs: number; waitMs: number },
): Promise<number> {
  const peer = cfg.peer as { site: string; domain: string }
  io.out(
    `failback to ${cfg.site}: producers (gateways, simulators) must route by the site map within the grace period (${secs(o.graceMs)}): a reading sent to ${peer.site} after its segments are sealed is a stray there, forwarded to ${cfg.site} by ${peer.site}'s relay (applied, but late: its window may have closed).`,
  )
  io.out(
    `readings ${cfg.site} acknowledged for these partitions while ${peer.site} owned them (its unmirrored tail from before the loss, strays) are forwarded by ${cfg.site}'s relay or, if not yet, read by ${cfg.site}'s new segments ('not yet applied' in 'site status').`,
  )
  const t0 = Date.now()
  const r = await takeBack(nc, cfg, {
    graceMs: o.graceMs,
    timeoutMs: o.timeoutMs,
    log: (m) => io.out(`  [${secs(Date.now() - t0)}] ${m}`),
  })
  if (r.partitions.length === 0) {
    io.out(`nothing to take back: ${cfg.site} owns its home partitions (epoch ${r.epoch})`)
    return 0
  }
  io.out(
    `failback handover done in ${secs(r.ms)}: epoch ${r.epoch}, partitions ${ranges(r.partitions)} owned by ${cfg.site} again`,
  )
  if (r.strays) io.out(strayLine(cfg.site, r))
  return await reportProcessing(kv, r, t0, o.waitMs, cfg, io, 'failback')
}

function strayLine(site: string, r: MoveResult): string {
  const starts = Object.entries(r.strays ?? {}).map(([p, n]) => `partition ${p} from sequence ${r.from - n}`)
  return `readings of ${site}'s TLM its relay had not forwarded (strays) are read by the new segments, which start earlier: ${starts.join(', ')}`
}

function rpoLine(peer: string, r: MoveResult): string {
  const n = r.unmirrored ?? 0
  const heard =
    r.lastHeardMs === undefined
      ? `never heard from ${peer}`
      : `last heard from ${peer} ${secs(r.lastHeardMs)} before the failover`
  const lag =
    n === 0
      ? `it had everything ${peer} had reported (lag 0)`
      : `it was ${n} messages behind (${peer}'s TLM at sequence ${r.sealedAt + n}; _sys.tick messages included)`
  return (
    `RPO: the mirror of ${peer}'s TLM ends at sequence ${r.sealedAt}; ${heard}, ${lag}${sealAge(peer, r)}. Readings ${peer} acknowledged past ${r.sealedAt} are not processed now; ` +
    `those acked after it was last heard are not known here. If ${peer} comes back with its disk, its relay forwards them here ('not yet applied' at ${peer} in 'pitwall site status' counts them exactly until then)`
  )
}

/** The seal's age: over a slow link the mirror hears the peer while it is seconds behind (MoveResult.sealAgeMs). */
function sealAge(peer: string, r: MoveResult): string {
  if (r.sealAgeMs === undefined) return ''
  const behind = r.sealAgeMs - (r.lastHeardMs ?? 0)
  const gap =
    behind > 2_000
      ? `: if ${peer} stored readings until it was lost, up to ${secs(behind)} of them after that one are not here (a slow link: what is on the wire is not in the lag)`
      : ''
  return `; the newest message it holds was stored at ${peer} ${secs(r.sealAgeMs)} before the failover${gap}`
}

async function reportProcessing(
  kv: KV,
  r: MoveResult,
  t0: number,
  waitMs: number,
  cfg: RuntimeConfig,
  io: SiteIo,
  what: string,
): Promise<number> {
  if (waitMs === 0) {
    io.out(`not waiting (--wait-s 0): check 'pitwall partitions' for owners and cursors in epoch ${r.epoch}`)
    return 0
  }
  io.out(
    `waiting up to ${secs(waitMs)} until every moved partition is processed again (its owner applied a message of the new segment: cursor at or past ${fmtPos(position(r.epoch, r.from))})`,
  )
  const done = await waitProcessing(kv, r.partitions, r.epoch, r.from, t0, waitMs, (p, ms, rec) => {
    io.out(
      `  partition ${p} processing again ${secs(ms)} after the ${what} began (owner ${rec.owner}, cursor ${fmtPos(rec.cursor)})`,
    )
  })
  const missing = r.partitions.filter((p) => !done.has(p))
  if (missing.length > 0) {
    io.err(
      `partitions ${ranges(missing)} are not processed after ${secs(waitMs)}: are ${cfg.site}'s workers running and past the peer-map gate? ('pitwall partitions', gauge pitwall_site_awaiting_peer_map)`,
    )
    return 1
  }
  io.out(
    `all ${r.partitions.length} partitions processing again ${secs(Math.max(...done.values()))} after the ${what} began`,
  )
  return 0
}

async function status(
  nc: NatsConnection,
  jsm: JetStreamManager,
  kv: KV,
  view: SiteMapView,
  cfg: RuntimeConfig,
  io: SiteIo,
): Promise<number> {
  const peer = cfg.peer as { site: string; domain: string }
  const map = await view.refresh()
  const link = await peerReachable(nc, peer.domain, 1_000)
  io.out(
    `site ${cfg.site} (domain ${cfg.domain})   peer ${peer.site} (domain ${peer.domain}): link ${link ? 'UP' : 'DOWN'}`,
  )
  io.out(`epoch ${map.epoch} (${map.reason}${map.at ? `, ${new Date(map.at).toISOString()}` : ''})`)
  const mine = map.owners.flatMap((s, p) => (s === cfg.site ? [p] : []))
  const theirs = map.owners.flatMap((s, p) => (s !== cfg.site ? [p] : []))
  io.out(
    `partitions owned here: ${ranges(mine) || '-'}   at ${peer.site}: ${ranges(theirs) || '-'}   home here: ${ranges(cfg.homePartitions)}`,
  )
  const own = await readingCounts(jsm, cfg.streams.tlm, cfg.site)
  if (own)
    io.out(
      `readings ${cfg.streams.tlm.padEnd(10)} ${own.readings} readings (+ ${own.ticks} _sys.tick messages), last sequence ${own.lastSeq}`,
    )
  const streams = peerStreams(cfg, peer.site)
  const lags = await mirrorLags(jsm, cfg, peer.site)
  const mirror = await readingCounts(jsm, streams.tlm, peer.site)
  if (mirror)
    io.out(
      `mirror   ${streams.tlm.padEnd(10)} ${mirror.readings} readings (+ ${mirror.ticks} _sys.tick messages), last sequence ${mirror.lastSeq}, lag ${lags[streams.tlm] ?? '?'}`,
    )
  else io.out(`mirror   ${streams.tlm.padEnd(10)} missing`)
  for (const name of [streams.out, streams.state]) {
    const info = await jsm.streams.info(name).catch(() => undefined)
    io.out(
      `mirror   ${name.padEnd(10)} ${info ? `${info.state.messages} msgs, last ${info.state.last_seq}, lag ${info.mirror?.lag ?? '?'}, active ${info.mirror && info.mirror.active >= 0 ? `${Math.round(info.mirror.active / 1e6)} ms ago` : 'never'}` : 'missing'}`,
    )
  }
  // RPO now: what the peer acked that this site does not have.
  if (mirror) {
    if (link) {
      const pj = await jetstreamManager(nc, { domain: peer.domain, timeout: 5_000, checkAPI: false })
      const peerEnd = (await pj.streams.info(cfg.streams.tlm)).state.last_seq + 1
      const notYet = await readingsBetween(
        jetstream(nc, { domain: peer.domain, timeout: 5_000 }),
        pj,
        cfg.streams.tlm,
        `tlm.${peer.site}.*.*.*`,
        mirror.lastSeq + 1,
        peerEnd,
      )
      io.out(
        `RPO now: ${notYet} readings acknowledged at ${peer.site} (up to its TLM sequence ${peerEnd - 1}) are not yet in ${streams.tlm} (exact, ticks excluded; the link is up)`,
      )
    } else {
      const lag = lags[streams.tlm] ?? 0
      io.out(
        `RPO now: ${peer.site}'s TLM was at sequence ${mirror.lastSeq + lag} when last heard, the mirror is at ${mirror.lastSeq}: ${lag} messages acknowledged at ${peer.site} are not here (link down: _sys.tick messages included, and nothing acked after it was last heard)`,
      )
    }
  }
  const un = await pendingStrays(nc, jsm, kv, cfg, map, link)
  const bySite = Object.entries(un.bySite).map(([s, n]) => `${n} at ${s}`)
  if (!link) bySite.push(`${peer.site}: unknown (link down)`)
  io.out(
    `not yet applied: ${un.readings} readings acknowledged in no segment and not forwarded by a relay (sent to a site that did not own the partition, or a lost site's unmirrored tail): ${bySite.join(', ')}`,
  )
  const role = siteRole(map, cfg.site, cfg.homePartitions)
  if (role === 'survivor')
    io.out(
      `role: SURVIVOR (holds ${peer.site}'s partitions). When ${peer.site} is back and its mirrors caught up, run 'pitwall site failback' there.`,
    )
  else if (role === 'degraded')
    io.out(
      `role: DEGRADED (${peer.site} holds our home partitions). Run 'pitwall site failback' here to take them back.`,
    )
  else io.out('role: NORMAL')
  const ov = await readOverride(kv, cfg.site)
  if (ov)
    io.out(
      `override in force until ${new Date(ov.until).toISOString()}: ${peer.site} assumed lost by ${ov.by}@${ov.host} at ${new Date(ov.at).toISOString()} (${ov.reason})`,
    )
  return 0
}
