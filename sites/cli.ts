/**
 * `pitwall` operator command (bin in package.json; `node dist/sites/cli.js ...`):
 *   pitwall state <sensor|vehicle> <id>    live state of an entity (from its owner, or its last snapshot)
 *   pitwall partitions                     owner, fencing token and cursor of every partition
 * Settings from PITWALL_* environment variables (docs/configuration.md).
 */
import { Kvm } from '@nats-io/kv'
import { buildProfiles, compileConfig, connectNats, isEntityKind, optionsFromEnv, PitwallError, PROFILES, queryDeps, queryEntity } from '../actors/mod.js'

const [cmd, ...rest] = process.argv.slice(2)
const usage = 'usage: pitwall state <sensor|vehicle> <id> | pitwall partitions'

async function main(): Promise<number> {
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
      process.stdout.write(`${JSON.stringify(res, null, 2)}\n`)
      return 0
    }
    if (cmd === 'partitions') {
      const kv = await new Kvm(nc).open(cfg.streams.stateBucket)
      process.stdout.write('partition  owner                          token  cursor  renewed\n')
      for (let p = 0; p < cfg.partitions; p++) {
        const e = await kv.get(`part.${p}`)
        const r = e?.operation === 'PUT' ? e.json<{ owner: string | null; token: number; cursor: number; renewedAt: number }>() : undefined
        const age = r ? `${((Date.now() - r.renewedAt) / 1000).toFixed(1)} s ago` : '-'
        process.stdout.write(`${String(p).padEnd(10)} ${String(r?.owner ?? '(free)').padEnd(30)} ${String(r?.token ?? 0).padEnd(6)} ${String(r?.cursor ?? 0).padEnd(7)} ${age}\n`)
      }
      return 0
    }
    process.stderr.write(`${usage}\n`)
    return 2
  } finally {
    await nc.close()
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  const code = err instanceof PitwallError ? err.code : 'PW_FAILED'
  process.stderr.write(`${code}: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
