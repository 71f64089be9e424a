/**
 * `pitwall` operator command (bin in package.json; `node dist/sites/cli.js ...`):
 *   pitwall state <sensor|vehicle> <id>    live state of an entity (from its owner, or its last snapshot)
 *   pitwall partitions                     owner, fencing token, epoch and cursor of every partition
 *   pitwall site status                    this site's epoch, role, partitions, peer link and mirror lag
 *   pitwall site failover                  take the peer site's partitions now (the peer is lost)
 *   pitwall site failback                  take this site's home partitions back from the peer (controlled)
 *   pitwall site assume-peer-lost --site <s> --confirm --reason <why> [--for-min <n>]
 *                                          let this site's workers take partitions without the peer's map
 *                                          (the peer is gone for good; audited in the state bucket)
 *   pitwall simulate --profile <p> ...     seeded simulator with ground truth (sites/simulate/cli.ts)
 *   pitwall train ...                      fit the asset risk model (sites/simulate/train.ts)
 *   pitwall deploy --site <s> [--plan]     Nomad deploy of a site (nomad-jobs/deploy.ts, docs/deploy.md)
 * Settings from PITWALL_* environment variables (docs/configuration.md); `site` needs PITWALL_PEER_SITE and
 * PITWALL_HOME_PARTITIONS like the site's workers.
 */
import { hostname, userInfo } from 'node:os'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import {
  buildProfiles, checkDeployment, compileConfig, ConfigError, connectNats, epochOf, isEntityKind, optionsFromEnv, peerReachable, peerStreams,
  PitwallError, PROFILES, queryDeps, queryEntity, readOverride, readRecord, seqOf, SITE_OVERRIDE_KEY, SiteMapView, takeBack, takeOver, writeOverride,
  OVERRIDE_DEFAULT_MS, type SiteOverride, type RuntimeConfig,
} from '../actors/mod.js'
import { deployMain } from '../nomad-jobs/deploy.js'
import { mqttUsersMain } from '../gateway/mod.js'
import { simulateMain } from './simulate/cli.js'
import { trainMain } from './simulate/train.js'

const [cmd, ...rest] = process.argv.slice(2)
const usage = [
  'usage: pitwall state <sensor|vehicle> <id>',
  '       pitwall partitions',
  '       pitwall site status|failover|failback',
  '       pitwall site assume-peer-lost --site <this site> --confirm --reason <why> [--for-min <minutes, default 60>]',
  '       pitwall simulate --profile <race|environment|plant|asset|road> ...',
  '       pitwall train ...',
  '       pitwall deploy --site <s> [--plan]',
  '       pitwall mqtt-users --out <file> [--service-users <file>] [--anonymous] [--reload <pid> | --pid-file <file>]',
].join('\n')
const out = (s: string): void => {
  process.stdout.write(`${s}\n`)
}
const fmtPos = (pos: number): string => (epochOf(pos) === 0 ? String(pos) : `${epochOf(pos)}:${seqOf(pos)}`)

async function site(sub: string | undefined): Promise<number> {
  const cfg = compileConfig(optionsFromEnv(process.env))
  if (!cfg.peer) {
    process.stderr.write('pitwall site needs PITWALL_PEER_SITE (and PITWALL_HOME_PARTITIONS): this deployment has one site\n')
    return 2
  }
  const nc = await connectNats(cfg.natsUrl, 'pitwall-cli')
  try {
    const jsm = await jetstreamManager(nc)
    // A failover or failback moves partitions: never on another deployment's NATS (PW_DEPLOYMENT_MISMATCH).
    await checkDeployment(nc, jsm, cfg)
    const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
    const view = new SiteMapView(cfg, kv, jsm)
    if (sub === 'status') {
      const map = await view.refresh()
      const link = await peerReachable(nc, cfg.peer.domain, 1_000)
      out(`site ${cfg.site} (domain ${cfg.domain})   peer ${cfg.peer.site} (domain ${cfg.peer.domain}): link ${link ? 'UP' : 'DOWN'}`)
      out(`epoch ${map.epoch} (${map.reason}${map.at ? `, ${new Date(map.at).toISOString()}` : ''})`)
      const mine = map.owners.flatMap((s, p) => (s === cfg.site ? [p] : []))
      const theirs = map.owners.flatMap((s, p) => (s !== cfg.site ? [p] : []))
      out(`partitions owned here: ${mine.join(',') || '-'}   at ${cfg.peer.site}: ${theirs.join(',') || '-'}   home here: ${cfg.homePartitions.join(',')}`)
      for (const name of Object.values(peerStreams(cfg, cfg.peer.site))) {
        const info = await jsm.streams.info(name).catch(() => undefined)
        out(`mirror ${name.padEnd(10)} ${info ? `${info.state.messages} msgs, last ${info.state.last_seq}, lag ${info.mirror?.lag ?? '?'}, active ${info.mirror && info.mirror.active >= 0 ? `${Math.round(info.mirror.active / 1e6)} ms ago` : 'never'}` : 'missing'}`)
      }
      const home = new Set(cfg.homePartitions)
      if (mine.some((p) => !home.has(p))) out(`role: SURVIVOR (holds ${cfg.peer.site}'s partitions). When ${cfg.peer.site} is back and its mirrors caught up, run 'pitwall site failback' there.`)
      else if (theirs.some((p) => home.has(p))) out(`role: DEGRADED (${cfg.peer.site} holds our home partitions). Run 'pitwall site failback' here to take them back.`)
      else out('role: NORMAL')
      const ov = await readOverride(kv, cfg.site)
      if (ov) out(`override in force until ${new Date(ov.until).toISOString()}: ${cfg.peer.site} assumed lost by ${ov.by}@${ov.host} at ${new Date(ov.at).toISOString()} (${ov.reason})`)
      return 0
    }
    if (sub === 'failover') {
      if (await peerReachable(nc, cfg.peer.domain, 1_000)) {
        out(`warning: ${cfg.peer.site} still answers over the link; failing over anyway (its workers release the partitions when they see epoch > theirs)`)
      }
      const r = await takeOver(nc, cfg, 'operator failover')
      if (r.partitions.length === 0) out(`nothing to take: ${cfg.peer.site} owns no partitions (epoch ${r.epoch})`)
      else out(`failover done in ${r.ms} ms: epoch ${r.epoch}, partitions ${r.partitions.join(',')} now owned by ${cfg.site}; ${cfg.peer.site}'s readings up to sequence ${r.sealedAt} (mirror) are replayed, new ones start at ${cfg.site}'s sequence ${r.from}`)
      return 0
    }
    if (sub === 'assume-peer-lost') {
      const o = overrideFromArgs(cfg, rest.slice(1))
      const revision = await writeOverride(kv, o)
      const link = await peerReachable(nc, cfg.peer.domain, 1_000)
      out(`recorded in ${cfg.streams.stateBucket}/${SITE_OVERRIDE_KEY} (revision ${revision}): ${JSON.stringify(o)}`)
      out(`workers of ${cfg.site} waiting for ${cfg.peer.site}'s map now take partitions by ${cfg.site}'s own map; workers starting after ${new Date(o.until).toISOString()} wait again`)
      if (link) out(`warning: ${cfg.peer.site} answers over the link right now: workers sync its map anyway, the override changes nothing`)
      else out(`next, if ${cfg.peer.site} held partitions: 'pitwall site failover' here to take them`)
      return 0
    }
    if (sub === 'failback') {
      const r = await takeBack(nc, cfg, { log: (m) => out(m) })
      if (r.partitions.length === 0) out(`nothing to take back: ${cfg.site} owns its home partitions (epoch ${r.epoch})`)
      else out(`failback done in ${r.ms} ms: epoch ${r.epoch}, partitions ${r.partitions.join(',')} owned by ${cfg.site} again`)
      return 0
    }
    process.stderr.write(`${usage}\n`)
    return 2
  } finally {
    await nc.close()
  }
}

/**
 * The audited override from `assume-peer-lost` flags. `--site` must name this site (PITWALL_SITE) so an
 * override is never written into the wrong site's bucket; `--confirm` and a reason are required.
 */
function overrideFromArgs(cfg: RuntimeConfig, args: readonly string[], now = Date.now()): SiteOverride {
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : undefined
  }
  const peer = cfg.peer?.site ?? '?'
  const site = flag('--site')
  if (site !== cfg.site) throw new ConfigError('--site', `must name this site (${cfg.site}, from PITWALL_SITE), got ${site ?? 'nothing'}`)
  if (!args.includes('--confirm')) {
    throw new ConfigError('--confirm', `${cfg.site}'s workers would take partitions without ${peer}'s map: if ${peer} is alive behind a cut link and failed over, both sites process the same partitions; only for a peer that is gone for good. Repeat with --confirm`)
  }
  const reason = flag('--reason')
  if (!reason || reason.startsWith('--')) throw new ConfigError('--reason', 'say why the peer is gone for good (recorded with who and when)')
  const forMin = flag('--for-min')
  const minutes = forMin === undefined ? OVERRIDE_DEFAULT_MS / 60_000 : Number(forMin)
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 24 * 60) throw new ConfigError('--for-min', `an integer in [1, 1440], got ${forMin}`)
  let by = process.env.USER ?? process.env.LOGNAME ?? ''
  try {
    by ||= userInfo().username
  } catch {
    by ||= 'unknown'
  }
  return { site: cfg.site, by, host: hostname(), at: now, until: now + minutes * 60_000, reason }
}

async function main(): Promise<number> {
  if (cmd === 'simulate') return await simulateMain(rest)
  if (cmd === 'train') return await trainMain(rest)
  if (cmd === 'deploy') return await deployMain(rest)
  if (cmd === 'site') return await site(rest[0])
  if (cmd === 'mqtt-users') return await mqttUsersMain(rest, process.env, { out, readStdin: async () => { let s = ''; for await (const c of process.stdin) s += String(c); return s } })
  if (cmd !== 'state' && cmd !== 'partitions') {
    process.stderr.write(`${usage}\n`)
    return 2
  }
  const cfg = compileConfig(optionsFromEnv(process.env))
  const nc = await connectNats(cfg.natsUrl, 'pitwall-cli')
  try {
    if (cmd === 'state') {
      const [kind, id] = rest
      if (!kind || !id || !isEntityKind(kind)) {
        process.stderr.write(`${usage}\n`)
        return 2
      }
      const res = await queryEntity(await queryDeps(nc, cfg, buildProfiles(PROFILES, cfg)), kind, id)
      out(JSON.stringify(res, null, 2))
      return 0
    }
    const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
    out('partition  owner                          token  epoch  cursor            renewed')
    for (let p = 0; p < cfg.partitions; p++) {
      const r = (await readRecord(kv, p))?.record
      const age = r ? `${((Date.now() - r.renewedAt) / 1000).toFixed(1)} s ago` : '-'
      out(`${String(p).padEnd(10)} ${String(r?.owner ?? '(free)').padEnd(30)} ${String(r?.token ?? 0).padEnd(6)} ${String(r?.epoch ?? 0).padEnd(6)} ${fmtPos(r?.cursor ?? 0).padEnd(17)} ${age}`)
    }
    return 0
  } finally {
    await nc.close()
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  const code = err instanceof PitwallError ? err.code : 'PW_FAILED'
  process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
