/**
 * `pitwall` operator command (bin in package.json; `node dist/sites/cli.js ...`):
 *   pitwall state <sensor|vehicle> <id>    live state of an entity (from its owner, or its last snapshot)
 *   pitwall partitions                     owner, fencing token, epoch and cursor of every partition
 *   pitwall site status                    this site's epoch, role, partitions, peer link and mirror lag
 *   pitwall site failover                  take the peer site's partitions now (the peer is lost)
 *   pitwall site failback                  take this site's home partitions back from the peer (controlled)
 *   pitwall simulate --profile <p> ...     seeded simulator with ground truth (sites/simulate/cli.ts)
 *   pitwall train ...                      fit the asset risk model (sites/simulate/train.ts)
 *   pitwall deploy --site <s> [--plan]     Nomad deploy of a site (nomad-jobs/deploy.ts, docs/deploy.md)
 * Settings from PITWALL_* environment variables (docs/configuration.md); `site` needs PITWALL_PEER_SITE and
 * PITWALL_HOME_PARTITIONS like the site's workers.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import {
  buildProfiles, compileConfig, connectNats, epochOf, isEntityKind, optionsFromEnv, peerReachable, peerStreams,
  PitwallError, PROFILES, queryDeps, queryEntity, readRecord, seqOf, SiteMapView, takeBack, takeOver,
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
