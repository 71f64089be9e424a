/**
 * `pitwall lab status|kill-site <s>|restore-site <s>` (docs/sites.md, "The drill on the local lab"): the
 * commands of the failover drill `npm start` prints. They find the running lab through its state file
 * (sites/lab-state.ts; `--lab <dir>` or PITWALL_LOCAL_DIR when it is not in the default place); kill and restore
 * are done by the launcher (it holds the processes and this run's secrets), reached at the state file's control
 * address. Exported for tests (`labMain`); cmd/pitwall.ts calls it.
 */
import {
  type CommandSpec,
  commandHelp,
  ConfigError,
  flagString,
  parseCommand,
  ranges,
  type RuntimeConfig,
} from '../actors/mod.js'
import { LabError, LabErrorCodes } from './errors.js'
import { findLab, type LabState, pidAlive } from './lab-state.js'
import { siteConfig } from './site-cli.js'

export interface LabIo {
  out: (line: string) => void
  err: (line: string) => void
}

const LAB_FLAG = {
  name: 'lab',
  type: 'string',
  value: '<dir>',
  help: "the lab's directory (PITWALL_LOCAL_DIR of npm start); default: the running one under .pitwall-local/",
} as const

export const LAB_COMMANDS: Record<string, CommandSpec> = {
  status: {
    usage: 'pitwall lab status [--lab <dir>]',
    summary:
      'every process of each site (pid, running or not) and, from each site controller, its epoch, role and partitions',
    flags: [LAB_FLAG],
  },
  'kill-site': {
    usage: 'pitwall lab kill-site <site> [--lab <dir>]',
    summary:
      'lose a site: kill -9 of its workers, projector, gateway, controller and nats-servers (stores kept); the other site keeps running',
    flags: [LAB_FLAG],
    positionals: { min: 1, max: 1, names: '<site>' },
  },
  'restore-site': {
    usage: 'pitwall lab restore-site <site> [--lab <dir>]',
    summary:
      'bring a site back: its nats-servers, the link, then its workers (behind the peer-map gate), projector, gateway and controller',
    flags: [LAB_FLAG],
    positionals: { min: 1, max: 1, names: '<site>' },
  },
}

/** Usage of `pitwall lab`. */
export function labHelp(): string {
  return [
    'usage: pitwall lab <command> [flags]',
    '',
    'commands:',
    ...Object.entries(LAB_COMMANDS).map(([k, v]) => `  ${k.padEnd(14)} ${v.summary}`),
    '',
    '`pitwall lab <command> --help` lists the flags of a command.',
  ].join('\n')
}

/** `pitwall lab <args...>`: 0 ok, 1 failed, 2 usage. */
export async function labMain(
  args: readonly string[],
  env: Record<string, string | undefined>,
  root: string,
  io: LabIo,
): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined || sub === '--help' || sub === 'help') {
    io.out(labHelp())
    return sub === undefined ? 2 : 0
  }
  const spec = LAB_COMMANDS[sub]
  if (!spec) {
    io.err(`unknown command 'lab ${sub}'\n${labHelp()}`)
    return 2
  }
  const p = parseCommand(rest, spec)
  if (p.help) {
    io.out(commandHelp(spec))
    return 0
  }
  const lab = await findLab(env, root, flagString(p, 'lab'))
  if (sub === 'status') return await labStatus(lab, io)
  const site = p.positionals[0] as string
  if (!(site in lab.sites))
    throw new ConfigError(
      '<site>',
      `${JSON.stringify(site)} is not a site of the lab (${Object.keys(lab.sites).join(', ')})`,
    )
  return await control(lab, site, sub === 'kill-site' ? 'kill' : 'restore', io)
}

/** Asks the launcher to kill or restore a site; prints its lines as they come. */
async function control(lab: LabState, site: string, what: 'kill' | 'restore', io: LabIo): Promise<number> {
  let res: Response
  try {
    res = await fetch(`${lab.control.url}/sites/${site}/${what}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${lab.control.token}` },
    })
  } catch (err) {
    throw new LabError(
      LabErrorCodes.COMMAND_FAILED,
      `the launcher (pid ${lab.pid}) does not answer at ${lab.control.url}: ${String(err)}`,
      { cause: err, retryable: true },
    )
  }
  let last = ''
  let buf = ''
  const decoder = new TextDecoder()
  const reader = res.body?.getReader()
  for (;;) {
    const chunk = await reader?.read()
    if (!chunk || chunk.done) break
    buf += decoder.decode(chunk.value, { stream: true })
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      last = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (last.startsWith('failed: ')) io.err(last.slice('failed: '.length))
      else if (last !== 'done') io.out(last)
    }
  }
  if (last === 'done') return 0
  if (!last.startsWith('failed: '))
    io.err(`${LabErrorCodes.COMMAND_FAILED}: the launcher stopped answering (HTTP ${res.status})`)
  return 1
}

interface ControllerStatus {
  epoch: number
  role: string
  owned: number[]
  peerOwned: number[]
  peerLinkUp: boolean
  peer: string
}

async function controllerStatus(url: string): Promise<ControllerStatus | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) })
    return res.ok ? ((await res.json()) as ControllerStatus) : undefined
  } catch {
    // A site that is down has no controller to answer: said in the status line.
    return undefined
  }
}

/** One block per site: its state, what its controller says, then each process. */
async function labStatus(lab: LabState, io: LabIo): Promise<number> {
  io.out(
    `lab ${lab.dir} (${lab.mode}, launcher pid ${lab.pid}, started ${lab.startedAt}; P = ${lab.partitions}; topology ${lab.topology}${lab.prometheus ? `; Prometheus ${lab.prometheus}` : ''})`,
  )
  for (const [name, s] of Object.entries(lab.sites)) {
    const c = await controllerStatus(s.controllerUrl)
    const view = c
      ? `epoch ${c.epoch}, role ${c.role.toUpperCase()}, owns ${ranges(c.owned) || '-'}, ${c.peer} owns ${ranges(c.peerOwned) || '-'}, link to ${c.peer} ${c.peerLinkUp ? 'UP' : 'DOWN'}`
      : 'controller not answering'
    io.out(`site ${name}: ${s.state.toUpperCase()}   ${view}`)
    for (const p of s.processes) {
      // The file says what the launcher saw; a pid that is gone since says so too.
      const status = p.status === 'running' && !pidAlive(p.pid) ? 'gone' : p.status
      io.out(
        `  ${p.name.padEnd(18)} ${String(p.pid ?? '-').padEnd(8)} ${status.padEnd(8)} ${p.url ?? ''}${p.exit ? `   (${p.exit})` : ''}`,
      )
    }
  }
  return 0
}

/** Variables that point a command at a site; with none set (and no --lab), the CLI looks for the running lab. */
export const SITE_VARIABLES = [
  'PITWALL_NATS_URL',
  'PITWALL_SITE',
  'PITWALL_PARTITIONS',
  'PITWALL_PEER_SITE',
  'PITWALL_HOME_PARTITIONS',
] as const

/**
 * The runtime config of a command run against the lab (`pitwall state`, `pitwall partitions`): the lab's
 * topology file and `site` (default: the first site that is up), as `pitwall site --topology` reads them.
 */
export async function labSiteConfig(
  env: Record<string, string | undefined>,
  root: string,
  labDir: string | undefined,
  site: string | undefined,
  io: LabIo,
): Promise<{ cfg: RuntimeConfig; lab: LabState }> {
  const lab = await findLab(env, root, labDir)
  const up = Object.entries(lab.sites).find(([, s]) => s.state === 'up')?.[0]
  const name = site ?? up
  if (name === undefined)
    throw new LabError(
      LabErrorCodes.NOT_FOUND,
      `no site of the lab ${lab.dir} is up ('pitwall lab status'); pass --site <s> to ask a site anyway`,
    )
  if (!(name in lab.sites))
    throw new ConfigError(
      '--site',
      `${JSON.stringify(name)} is not a site of the lab (${Object.keys(lab.sites).join(', ')})`,
    )
  const flags = new Map([
    ['--topology', lab.topology],
    ['--site', name],
    ['--deployment', lab.deployment],
  ])
  // No PITWALL_* variable may mix into the lab's settings.
  return { cfg: await siteConfig(flags, {}, { out: io.out, err: io.err }), lab }
}
