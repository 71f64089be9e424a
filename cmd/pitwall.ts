/**
 * `pitwall` operator command (bin in package.json; `node dist/cmd/pitwall.js ...`):
 *   pitwall state <sensor|vehicle> <id>    live state of an entity (from its owner, or its last snapshot)
 *   pitwall partitions                     owner, fencing token, epoch and cursor of every partition
 *   pitwall lab <command>                  the local lab of `npm start`: status, kill-site, restore-site
 *                                          (sites/lab-cli.ts; `pitwall lab --help`)
 *   pitwall site <command> [flags]         status, failover, failback, assume-peer-lost (sites/site-cli.ts;
 *                                          flags or --topology <file> --site <s>; `pitwall site --help`)
 *   pitwall simulate --profile <p> ...     seeded simulator with ground truth (cmd/simulate.ts)
 *   pitwall train ...                      fit the asset risk model (cmd/train.ts)
 *   pitwall deploy --site <s> [--plan]     Nomad deploy of a site (nomad-jobs/deploy.ts, docs/deploy.md)
 *   pitwall mqtt-users ...                 the MQTT users file of a site's nats-servers (gateway/README.md)
 * `state` and `partitions` take their site from the PITWALL_* variables (docs/configuration.md) when one of
 * PITWALL_NATS_URL, PITWALL_SITE, PITWALL_PARTITIONS, PITWALL_PEER_SITE, PITWALL_HOME_PARTITIONS is set;
 * otherwise from the running local lab (its lab.json; `--lab <dir>`, `--site <s>`), or they say what to set.
 * Every command parses its flags with node:util parseArgs: `--help` per command, an unknown flag is
 * PW_CONFIG_INVALID naming it.
 */
import {
  buildProfiles,
  type CommandSpec,
  commandHelp,
  compileConfig,
  ConfigError,
  connectNats,
  flagString,
  isEntityKind,
  optionsFromEnv,
  type ParsedCommand,
  parseCommand,
  PitwallError,
  PROFILES,
  queryDeps,
  queryEntity,
  type RuntimeConfig,
} from '../actors/mod.js'
import { LabError } from '../sites/errors.js'
import { labMain, labSiteConfig, SITE_VARIABLES } from '../sites/lab-cli.js'
import { ROOT } from '../sites/local.js'
import { formatPartitions, partitionRows } from '../sites/partitions.js'
import { siteMain } from '../sites/site-cli.js'

const WHERE = [
  {
    name: 'lab',
    type: 'string',
    value: '<dir>',
    help: 'the local lab to ask (its PITWALL_LOCAL_DIR); default: the running one, unless PITWALL_* variables name a site',
  },
  { name: 'site', type: 'string', value: '<s>', help: 'with the lab: which site to ask (default: the first one up)' },
] as const

const COMMANDS: Record<string, CommandSpec> = {
  state: {
    usage: 'pitwall state <sensor|vehicle> <id> [--lab <dir>] [--site <s>]',
    summary: 'live state of an entity, from its owner (at either site) or its last snapshot',
    flags: WHERE,
    positionals: { min: 2, max: 2, names: '<kind> <id>' },
  },
  partitions: {
    usage: 'pitwall partitions [--lab <dir>] [--site <s>]',
    summary:
      "owner, fencing token, epoch and cursor of every partition; with two sites, the peer's partitions with their owner at the peer",
    flags: WHERE,
  },
}

const usage = [
  'usage: pitwall state <sensor|vehicle> <id> [--lab <dir>] [--site <s>]',
  '       pitwall partitions [--lab <dir>] [--site <s>]',
  '       pitwall lab status|kill-site <s>|restore-site <s> [--lab <dir>] (pitwall lab --help)',
  '       pitwall site status|failover|failback|assume-peer-lost [--topology <file> --site <s> | --site <s> --peer <s> --home <0-7> ...] (pitwall site --help)',
  '       pitwall simulate --profile <race|environment|plant|asset|road> ... (pitwall simulate --help)',
  '       pitwall train ... (pitwall train --help)',
  '       pitwall deploy --site <s> [--plan]',
  '       pitwall mqtt-users --out <file> [--service-users <file>] [--anonymous] [--reload <pid> | --pid-file <file>] (pitwall mqtt-users --help)',
  '`pitwall <command> --help` lists the flags of a command.',
].join('\n')
const out = (s: string): void => {
  process.stdout.write(`${s}\n`)
}
const err = (s: string): void => {
  process.stderr.write(`${s}\n`)
}

/** The site a command asks: PITWALL_* when they name one (and no --lab), else the running lab. */
async function whereConfig(p: ParsedCommand): Promise<RuntimeConfig> {
  const labDir = flagString(p, 'lab')
  const site = flagString(p, 'site')
  if (labDir === undefined && SITE_VARIABLES.some((k) => process.env[k])) {
    const cfg = compileConfig(optionsFromEnv(process.env))
    if (site !== undefined && site !== cfg.site)
      throw new ConfigError(
        '--site',
        `${JSON.stringify(site)} but PITWALL_SITE is ${JSON.stringify(cfg.site)}: --site chooses a site of the lab (--lab); unset the PITWALL_* variables or set them for that site`,
      )
    return cfg
  }
  const { cfg, lab } = await labSiteConfig(process.env, ROOT, labDir, site, { out, err })
  err(`(lab ${lab.dir}, site ${cfg.site} at ${cfg.natsUrl})`)
  return cfg
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2)
  // Imported when used: the gateway's and Nomad's modules cost seconds of start-up the other commands need not pay.
  if (cmd === 'simulate') return await (await import('./simulate.js')).simulateMain(rest)
  if (cmd === 'train') return await (await import('./train.js')).trainMain(rest)
  if (cmd === 'deploy') return await (await import('../nomad-jobs/deploy.js')).deployMain(rest)
  if (cmd === 'lab') return await labMain(rest, process.env, ROOT, { out, err })
  if (cmd === 'site') return await siteMain(rest, process.env, { out, err })
  if (cmd === 'mqtt-users')
    return await (
      await import('../gateway/mod.js')
    ).mqttUsersMain(rest, process.env, {
      out,
      readStdin: async () => {
        let s = ''
        for await (const c of process.stdin) s += String(c)
        return s
      },
    })
  if (cmd === '--help' || cmd === 'help') {
    out(usage)
    return 0
  }
  const spec = cmd === undefined ? undefined : COMMANDS[cmd]
  if (!spec) {
    err(cmd === undefined ? usage : `unknown command ${JSON.stringify(cmd)}\n${usage}`)
    return 2
  }
  const p = parseCommand(rest, spec)
  if (p.help) {
    out(commandHelp(spec))
    return 0
  }
  const [kind, id] = p.positionals as [string | undefined, string | undefined]
  if (cmd === 'state' && !isEntityKind(kind ?? ''))
    throw new ConfigError('<kind>', `must be sensor or vehicle, got ${JSON.stringify(kind)}`)
  const cfg = await whereConfig(p)
  const nc = await connectNats(cfg.natsUrl, 'pitwall-cli')
  try {
    if (cmd === 'state' && isEntityKind(kind ?? '') && id) {
      const res = await queryEntity(
        await queryDeps(nc, cfg, buildProfiles(PROFILES, cfg)),
        kind as 'sensor' | 'vehicle',
        id,
      )
      out(JSON.stringify(res, null, 2))
      return 0
    }
    for (const line of formatPartitions(cfg, await partitionRows(nc, cfg))) out(line)
    return 0
  } finally {
    await nc.close()
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const code = e instanceof PitwallError || e instanceof LabError ? e.code : 'PW_FAILED'
    process.stderr.write(`${code}: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  },
)
