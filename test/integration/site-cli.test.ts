/**
 * `pitwall site` flags and the site definition file (sites/site-cli.ts, issue 21 part 3): flags win over the
 * PITWALL_* variables; --topology + --site gives every setting; a home list that overlaps, is out of range, or
 * contradicts the topology or the site's recorded map / partition records is refused with PW_CONFIG_INVALID
 * naming the flag and the bad value; --help per command lists its flags. The recorded-map check runs against the
 * shared nats-server (127.0.0.1:4222) with a bucket of its own.
 */
import t, { type Test } from 'tap'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { connect } from '@nats-io/transport-node'
import { ConfigError, compileConfig } from '../../actors/mod.js'
import {
  checkHome,
  parseFlags,
  parseHome,
  readingCounts,
  readingsBetween,
  siteConfig,
  siteHelp,
  siteMain,
  type SiteIo,
} from '../../sites/site-cli.js'
import { localTopology } from '../../sites/local-topology.js'

const topo = localTopology({ partitions: 16 })
const files: Record<string, string> = {
  'topo.json': JSON.stringify(topo),
  'overlap.json': JSON.stringify({
    ...topo,
    sites: [{ ...topo.sites[0], homePartitions: [0, 1, 2, 3, 4, 5, 6, 7, 8] }, topo.sites[1]],
  }),
  'bad.json': '{ "partitions": 16, ',
}
const io = (lines: string[] = []): SiteIo => ({
  out: (l) => lines.push(l),
  err: (l) => lines.push(l),
  readFile: async (f) => {
    const text = files[f]
    if (text === undefined) throw new Error(`ENOENT: no such file ${f}`)
    return text
  },
})
const flagsOf = (command: string[]): Map<string, string> =>
  parseFlags(
    command,
    ['--topology', '--site', '--peer', '--home', '--partitions', '--nats', '--domain', '--peer-domain', '--wait-s'],
    ['--help'],
  )

/** The ConfigError a call throws (its setting and message), or a failure. */
async function refused(
  t: Test,
  what: string,
  fn: () => Promise<unknown>,
  setting: string,
  inMessage: string,
): Promise<void> {
  try {
    await fn()
    t.fail(`${what}: accepted`)
  } catch (err) {
    t.ok(err instanceof ConfigError, `${what}: a ConfigError (${String(err)})`)
    const e = err as ConfigError
    t.equal(e.code, 'PW_CONFIG_INVALID', `${what}: PW_CONFIG_INVALID`)
    t.equal(e.setting, setting, `${what}: names ${setting}`)
    t.match(e.message, inMessage, `${what}: says ${inMessage}: ${e.message}`)
  }
}

t.test('flags win over the environment; env stays the fallback', async (t) => {
  const env = {
    PITWALL_SITE: 'a',
    PITWALL_NATS_URL: 'nats://127.0.0.1:4301',
    PITWALL_PARTITIONS: '16',
    PITWALL_PEER_SITE: 'b',
    PITWALL_HOME_PARTITIONS: '0-7',
  }
  const fromEnv = await siteConfig(flagsOf([]), env, io())
  t.match(fromEnv, { site: 'a', natsUrl: 'nats://127.0.0.1:4301', partitions: 16, peer: { site: 'b', domain: 'b' } })
  t.same(fromEnv.homePartitions, [0, 1, 2, 3, 4, 5, 6, 7], 'everything from the variables')
  const fromFlags = await siteConfig(
    flagsOf([
      '--site',
      'x',
      '--peer',
      'y',
      '--peer-domain',
      'dy',
      '--home',
      '0-3,12',
      '--partitions',
      '16',
      '--nats',
      'nats://10.0.0.1:4222',
    ]),
    env,
    io(),
  )
  t.match(fromFlags, { site: 'x', natsUrl: 'nats://10.0.0.1:4222', peer: { site: 'y', domain: 'dy' }, domain: 'x' })
  t.same(fromFlags.homePartitions, [0, 1, 2, 3, 12], 'the flags win')
  const none = await siteConfig(
    flagsOf(['--site', 'a', '--peer', 'b', '--home', '0-7', '--partitions', '16']),
    {},
    io(),
  )
  t.match(none, { site: 'a', peer: { site: 'b' }, partitions: 16 }, 'no variables at all: flags alone')
})

t.test('a home list that overlaps or is out of range is refused, naming the flag and the value', async (t) => {
  await refused(
    t,
    'overlap',
    () => siteConfig(flagsOf(['--site', 'a', '--peer', 'b', '--home', '0-7,5', '--partitions', '16']), {}, io()),
    '--home',
    'partition 5 is listed twice',
  )
  await refused(t, 'overlap (value named)', async () => parseHome('--home', '0-3,2-4', 16), '--home', '"0-3,2-4"')
  await refused(
    t,
    'out of range',
    () => siteConfig(flagsOf(['--site', 'a', '--peer', 'b', '--home', '0-16', '--partitions', '16']), {}, io()),
    '--home',
    'partition 16 is outside 0..15',
  )
  await refused(
    t,
    'not a list',
    () => siteConfig(flagsOf(['--site', 'a', '--peer', 'b', '--home', '0..7']), {}, io()),
    '--home',
    '0..7',
  )
  await refused(
    t,
    'backwards',
    () => siteConfig(flagsOf(['--site', 'a', '--peer', 'b', '--home', '7-0']), {}, io()),
    '--home',
    'backwards',
  )
  await refused(
    t,
    'the variable too',
    () =>
      siteConfig(flagsOf([]), { PITWALL_SITE: 'a', PITWALL_PEER_SITE: 'b', PITWALL_HOME_PARTITIONS: '0-7,7' }, io()),
    'PITWALL_HOME_PARTITIONS',
    'partition 7 is listed twice',
  )
  await refused(t, 'missing', () => siteConfig(flagsOf(['--site', 'a', '--peer', 'b']), {}, io()), '--home', 'required')
  await refused(
    t,
    'no peer',
    () => siteConfig(flagsOf(['--site', 'a', '--home', '0-7']), {}, io()),
    '--peer',
    'needs the peer site',
  )
  await refused(
    t,
    'peer = this site',
    () => siteConfig(flagsOf(['--site', 'a', '--peer', 'a', '--home', '0-7']), {}, io()),
    '--peer',
    'is this site',
  )
  await refused(
    t,
    'bad NATS URL',
    () => siteConfig(flagsOf(['--site', 'a', '--peer', 'b', '--home', '0-7', '--nats', 'http://x/y']), {}, io()),
    '--nats',
    'not a NATS URL',
  )
  await refused(
    t,
    '--site of another site than the variables',
    () =>
      siteConfig(
        flagsOf(['--site', 'b']),
        { PITWALL_SITE: 'a', PITWALL_PEER_SITE: 'b', PITWALL_HOME_PARTITIONS: '0-7' },
        io(),
      ),
    '--site',
    'PITWALL_SITE is "a"',
  )
})

t.test('--topology <file> --site: every setting from the site definition, checked with validateTopology', async (t) => {
  const cfg = await siteConfig(
    flagsOf(['--topology', 'topo.json', '--site', 'b']),
    { PITWALL_HOME_PARTITIONS: '0-3', PITWALL_NATS_URL: 'nats://10.9.9.9:1' },
    io(),
  )
  t.match(
    cfg,
    { site: 'b', domain: 'b', partitions: 16, peer: { site: 'a', domain: 'a' }, natsUrl: 'nats://127.0.0.1:4401' },
    'site b of the file, over the variables',
  )
  t.same(cfg.homePartitions, [8, 9, 10, 11, 12, 13, 14, 15])
  t.same(
    (await siteConfig(flagsOf(['--topology', 'topo.json', '--site', 'a', '--home', '0-7']), {}, io())).homePartitions,
    [0, 1, 2, 3, 4, 5, 6, 7],
    '--home agreeing with the file',
  )
  await refused(
    t,
    '--home disagreeing with the file',
    () => siteConfig(flagsOf(['--topology', 'topo.json', '--site', 'a', '--home', '0-6']), {}, io()),
    '--home',
    'the home partitions of a are 0-7',
  )
  await refused(
    t,
    '--partitions disagreeing',
    () => siteConfig(flagsOf(['--topology', 'topo.json', '--site', 'a', '--partitions', '8']), {}, io()),
    '--partitions',
    'disagrees with topo.json',
  )
  await refused(
    t,
    '--peer disagreeing',
    () => siteConfig(flagsOf(['--topology', 'topo.json', '--site', 'a', '--peer', 'c']), {}, io()),
    '--peer',
    'the peer of a is b',
  )
  await refused(
    t,
    'unknown site',
    () => siteConfig(flagsOf(['--topology', 'topo.json', '--site', 'c']), {}, io()),
    '--site',
    "unknown site 'c'",
  )
  await refused(t, 'no site', () => siteConfig(flagsOf(['--topology', 'topo.json']), {}, io()), '--site', 'a or b')
  await refused(
    t,
    'overlapping homes in the file',
    () => siteConfig(flagsOf(['--topology', 'overlap.json', '--site', 'a']), {}, io()),
    '--topology',
    'partition 8 is already the home of site',
  )
  await refused(
    t,
    'not JSON',
    () => siteConfig(flagsOf(['--topology', 'bad.json', '--site', 'a']), {}, io()),
    '--topology',
    'not valid JSON',
  )
  await refused(
    t,
    'missing file',
    () => siteConfig(flagsOf(['--topology', 'nope.json', '--site', 'a']), {}, io()),
    '--topology',
    'cannot read nope.json',
  )
})

t.test('flags: unknown, repeated or missing values are refused; --help per command', async (t) => {
  await refused(t, 'unknown flag', async () => flagsOf(['--hom', '0-7']), '--hom', 'unknown flag')
  await refused(t, 'twice', async () => flagsOf(['--home', '0-7', '--home', '0-3']), '--home', 'given twice')
  await refused(t, 'no value', async () => flagsOf(['--home', '--site', 'a']), '--home', 'needs a value')
  t.same(
    flagsOf(['--home=0-7,12', '--site', 'a']),
    new Map([
      ['--home', '0-7,12'],
      ['--site', 'a'],
    ]),
    '--flag=value too',
  )
  for (const [cmd, flag] of [
    ['status', '--topology'],
    ['failover', '--wait-s'],
    ['failback', '--grace-s'],
    ['assume-peer-lost', '--confirm'],
  ] as const) {
    const lines: string[] = []
    t.equal(await siteMain([cmd, '--help'], {}, io(lines)), 0, `site ${cmd} --help exits 0`)
    const text = lines.join('\n')
    t.ok(
      text.includes(flag) && text.includes('--home <list>') && text.includes('--site <name>'),
      `site ${cmd} --help lists ${flag} and the site flags`,
    )
  }
  t.match(siteHelp(), /failback .*controlled/, 'pitwall site --help lists the commands')
  try {
    // Refused before connecting (nothing listens on this port).
    await siteMain(
      ['failback', '--site', 'a', '--peer', 'b', '--home', '0-7', '--nats', 'nats://127.0.0.1:1', '--grace-s', '-1'],
      {},
      io(),
    )
    t.fail('a negative grace period was taken')
  } catch (err) {
    t.match(err, { code: 'PW_CONFIG_INVALID', setting: '--grace-s' }, 'a bad number is refused, naming the flag')
  }
  const lines: string[] = []
  t.equal(await siteMain(['frobnicate'], {}, io(lines)), 2, 'an unknown command is a usage error')
  try {
    await siteMain(['failover', '--grace-s', '3'], {}, io())
    t.fail('failover took --grace-s')
  } catch (err) {
    t.match(err, { code: 'PW_CONFIG_INVALID', setting: '--grace-s' }, 'a flag of another command is refused')
  }
})

t.test("a home list that contradicts the site's recorded map or partition records is refused", async (t) => {
  const nc = await connect({ servers: '127.0.0.1:4222' })
  const bucket = `pw_sitecli_${process.pid}`
  const kvm = new Kvm(nc)
  const kv = await kvm.create(bucket, { history: 5 })
  const jsm = await jetstreamManager(nc)
  t.teardown(async () => {
    await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined)
    await nc.close()
  })
  const cfgOf = (home: number[]) =>
    compileConfig({
      site: 'a',
      partitions: 8,
      peer: { site: 'b' },
      homePartitions: home,
      streams: { stateBucket: bucket },
    })
  await checkHome(kv, jsm, cfgOf([0]), '--home')
  t.pass('nothing recorded (a first start): any home list is taken')
  // a failed over b's partitions 4-7 at epoch 2: since 0 for 0-3 (a's home), 4-7 moved.
  await kv.put(
    'site.map',
    JSON.stringify({
      epoch: 2,
      owners: Array(8).fill('a'),
      since: [0, 0, 0, 0, 2, 2, 2, 2],
      at: Date.now(),
      reason: 'failover',
    }),
  )
  // Partition 5's record: its chain starts with b's epoch-0 segment.
  await kv.put(
    'part.5',
    JSON.stringify({
      owner: null,
      token: 1,
      cursor: 0,
      renewedAt: 0,
      ttlMs: 1,
      epoch: 2,
      segments: [
        { epoch: 0, site: 'b', from: 1, to: 10 },
        { epoch: 2, site: 'a', from: 1 },
      ],
    }),
  )
  await checkHome(kv, jsm, cfgOf([0, 1, 2, 3]), '--home')
  t.pass('0-3 agrees with the recorded map')
  await refused(
    t,
    'leaves out a recorded home',
    () => checkHome(kv, jsm, cfgOf([0, 1, 2]), '--home'),
    '--home',
    "leaves out partition 3, whose home is a by a's site map (epoch 2)",
  )
  await refused(
    t,
    "claims the peer's partition (from a chain)",
    () => checkHome(kv, jsm, cfgOf([0, 1, 2, 3, 5]), '--home'),
    '--home',
    'includes partition 5, whose home is b by the chain of partition 5',
  )
})

t.test(
  'readings are counted apart from _sys.tick messages, over the whole stream and over a range of sequences',
  async (t) => {
    const nc = await connect({ servers: '127.0.0.1:4222' })
    const site = `z${process.pid}`
    const stream = `PW_SITECLI_TLM_${process.pid}`
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: stream, subjects: [`tlm.${site}.*.*.*`] })
    t.teardown(async () => {
      await jsm.streams.delete(stream).catch(() => undefined)
      await nc.close()
    })
    const js = jetstream(nc)
    // seq 1..30: partition 0 and 1 readings, a tick of each partition every third message.
    const kinds: string[] = []
    for (let i = 0; i < 30; i++) {
      const p = i % 2
      const subject = i % 3 === 2 ? `tlm.${site}.${p}._sys.tick` : `tlm.${site}.${p}.sensor.s${i}`
      kinds.push(subject)
      await js.publish(subject, '{}')
    }
    const reading = (s: string): boolean => !s.endsWith('._sys.tick')
    t.match(
      await readingCounts(jsm, stream, site),
      { messages: 30, ticks: 10, readings: 20, lastSeq: 30 },
      'the stream: 20 readings + 10 ticks',
    )
    const expect = (p: number | '*', from: number, end: number): number =>
      kinds.filter(
        (s, i) => i + 1 >= from && i + 1 < end && reading(s) && (p === '*' || s.startsWith(`tlm.${site}.${p}.`)),
      ).length
    for (let round = 0; round < 5; round++) {
      for (const [p, from, end] of [
        ['*', 1, 31],
        [0, 5, 20],
        [1, 11, 31],
        [0, 29, 31],
        [1, 31, 40],
        [0, 12, 12],
        [1, 1, 29],
      ] as const) {
        const n = await readingsBetween(js, jsm, stream, `tlm.${site}.${p}.*.*`, from, end)
        t.equal(n, expect(p, from, end), `partition ${p}, sequences [${from}, ${end}): ${n} readings`)
      }
    }
    t.equal(await readingsBetween(js, jsm, stream, `tlm.${site}.7.*.*`, 1, 31), 0, 'a partition without messages: 0')
  },
)
