/**
 * `pitwall` operator command (bin in package.json; `node dist/cmd/pitwall.js ...`):
 *   pitwall state <sensor|vehicle> <id>    live state of an entity (from its owner, or its last snapshot)
 *   pitwall partitions                     owner, fencing token, epoch and cursor of every partition
 *   pitwall site <command> [flags]         status, failover, failback, assume-peer-lost (sites/site-cli.ts;
 *                                          flags or --topology <file> --site <s>; `pitwall site --help`)
 *   pitwall simulate --profile <p> ...     seeded simulator with ground truth (cmd/simulate.ts)
 *   pitwall train ...                      fit the asset risk model (cmd/train.ts)
 *   pitwall deploy --site <s> [--plan]     Nomad deploy of a site (nomad-jobs/deploy.ts, docs/deploy.md)
 * Settings from PITWALL_* environment variables (docs/configuration.md); `site` commands take flags (or a site
 * definition file) that win over them.
 */
import { Kvm } from '@nats-io/kv'
import {
  buildProfiles, compileConfig, connectNats, epochOf, isEntityKind, optionsFromEnv, PitwallError, PROFILES, queryDeps, queryEntity, readRecord, seqOf,
} from '../actors/mod.js'
import { deployMain } from '../nomad-jobs/deploy.js'
import { mqttUsersMain } from '../gateway/mod.js'
import { siteMain } from '../sites/site-cli.js'
import { LabError } from '../sites/errors.js'
import { labMain } from '../sites/lab-cli.js'
import { ROOT } from '../sites/local.js'
import { simulateMain } from './simulate.js'
import { trainMain } from './train.js'

const [cmd, ...rest] = process.argv.slice(2)
const usage = [
  'usage: pitwall state <sensor|vehicle> <id>',
  '       pitwall partitions',
  '       pitwall site status|failover|failback|assume-peer-lost [--topology <file> --site <s> | --site <s> --peer <s> --home <0-7> ...] (pitwall site --help)',
  '       pitwall lab status|kill-site <s>|restore-site <s> [--lab <dir>] (pitwall lab --help)',
  '       pitwall simulate --profile <race|environment|plant|asset|road> ...',
  '       pitwall train ...',
  '       pitwall deploy --site <s> [--plan]',
  '       pitwall mqtt-users --out <file> [--service-users <file>] [--anonymous] [--reload <pid> | --pid-file <file>]',
].join('\n')
const out = (s: string): void => {
  process.stdout.write(`${s}\n`)
}
const fmtPos = (pos: number): string => (epochOf(pos) === 0 ? String(pos) : `${epochOf(pos)}:${seqOf(pos)}`)

async function main(): Promise<number> {
  if (cmd === 'simulate') return await simulateMain(rest)
  if (cmd === 'train') return await trainMain(rest)
  if (cmd === 'deploy') return await deployMain(rest)
  if (cmd === 'lab') return await labMain(rest, process.env, ROOT, { out, err: (s) => process.stderr.write(`${s}\n`) })
  if (cmd === 'site') return await siteMain(rest, process.env, { out, err: (s) => process.stderr.write(`${s}\n`) })
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
  const code = err instanceof PitwallError || err instanceof LabError ? err.code : 'PW_FAILED'
  process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
