/**
 * The local lab's state file (`<PITWALL_LOCAL_DIR>/lab.json`, docs/sites.md "The drill on the local lab"): what
 * `npm start`'s launcher runs (pids per site and service, ports, the topology file, its control address) so that
 * `pitwall lab ...`, `pitwall state` and `pitwall partitions` find the running lab without PITWALL_* variables.
 * The launcher rewrites it on every change (atomically: a temp file renamed) and removes it when it stops.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../actors/mod.js'
import { LabError, LabErrorCodes } from './errors.js'

export const LAB_STATE_FILE = 'lab.json'
export const LAB_STATE_VERSION = 1

/** One process of a site: a nats-server or a service (worker, projector, gateway, controller). */
export interface LabProcess {
  /** `a/worker-0`, `a/gateway`, `nats-server a` (`a-1`.. when clustered). */
  name: string
  pid: number | null
  /** `running`, `killed` (by `pitwall lab kill-site`) or `exited` (anything else: its exit is in `exit`). */
  status: 'running' | 'killed' | 'exited'
  exit?: string
  /** Where it listens (client URL of a nats-server, HTTP of a service), when it does. */
  url?: string
}

export interface LabSite {
  /** `up`: every process runs; `down`: none; `partial`: some; `killing` / `restoring` while a command runs. */
  state: 'up' | 'down' | 'partial' | 'killing' | 'restoring'
  natsUrl: string
  pgUrl: string
  gatewayUrl: string
  controllerUrl: string
  processes: LabProcess[]
}

export interface LabState {
  version: typeof LAB_STATE_VERSION
  /** The launcher's pid: a state file whose launcher is gone is stale. */
  pid: number
  startedAt: string
  updatedAt: string
  mode: 'single' | 'clustered'
  dir: string
  /** The site definition file the `pitwall site` commands read (--topology). */
  topology: string
  deployment: string
  partitions: number
  /** The launcher's control endpoint (loopback; the token is for this run only; the file is mode 0600). */
  control: { url: string; token: string }
  /**
   * This run's site-controller command token: the controllers require it (PITWALL_CONTROLLER_COMMAND_TOKEN) on
   * POST /failover and /failback, and the gateways send it when they relay the console's commands
   * (PITWALL_GATEWAY_SITE_COMMAND_TOKEN). Never printed; only here (mode 0600).
   */
  controllerToken: string
  sites: Record<string, LabSite>
  prometheus: string | null
}

/** Writes the state file atomically (readers never see half a file). */
export async function writeLabState(dir: string, state: LabState): Promise<void> {
  const file = join(dir, LAB_STATE_FILE)
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 })
  await rename(tmp, file)
}

export async function removeLabState(dir: string): Promise<void> {
  await rm(join(dir, LAB_STATE_FILE), { force: true })
}

/** True when a process with this pid exists (signal 0 checks without signalling). */
export function pidAlive(pid: number | null): boolean {
  if (pid === null) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The state file in `dir`, or undefined when there is none; a malformed file is PW_LAB_STATE_INVALID. */
export async function readLabState(dir: string): Promise<LabState | undefined> {
  const file = join(dir, LAB_STATE_FILE)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new LabError(LabErrorCodes.STATE_INVALID, `cannot read ${file}: ${String(err)}`, { cause: err })
  }
  let s: LabState
  try {
    s = JSON.parse(text) as LabState
  } catch (err) {
    throw new LabError(LabErrorCodes.STATE_INVALID, `${file} is not JSON: ${String(err)}`, { cause: err })
  }
  if (s.version !== LAB_STATE_VERSION || typeof s.pid !== 'number' || typeof s.sites !== 'object' || !s.control?.url) {
    throw new LabError(
      LabErrorCodes.STATE_INVALID,
      `${file} is not a lab state file of version ${LAB_STATE_VERSION} (written by another pitwall?)`,
    )
  }
  return s
}

/** Where a lab may run: PITWALL_LOCAL_DIR, else npm start's two defaults under the repository. */
export function labDirs(env: Record<string, string | undefined>, root: string): string[] {
  if (env.PITWALL_LOCAL_DIR) return [env.PITWALL_LOCAL_DIR]
  return ['single', 'clustered'].map((m) => join(root, '.pitwall-local', m))
}

/**
 * The running lab: `dir` (a --lab flag) or the first of labDirs with a state file whose launcher is alive.
 * None: PW_LAB_NOT_FOUND saying what was looked at and what to do; two: which one to choose.
 */
export async function findLab(env: Record<string, string | undefined>, root: string, dir?: string): Promise<LabState> {
  const dirs = dir === undefined ? labDirs(env, root) : [dir]
  const found: LabState[] = []
  const stale: string[] = []
  for (const d of dirs) {
    const s = await readLabState(d)
    if (s === undefined) continue
    if (pidAlive(s.pid)) found.push(s)
    else stale.push(`${join(d, LAB_STATE_FILE)} (its launcher, pid ${s.pid}, is gone)`)
  }
  if (found.length === 1) return found[0] as LabState
  if (found.length > 1) {
    throw new ConfigError(
      '--lab',
      `two labs are running (${found.map((s) => s.dir).join(' and ')}): pass --lab <dir> or set PITWALL_LOCAL_DIR`,
    )
  }
  const looked = dirs.map((d) => join(d, LAB_STATE_FILE)).join(', ')
  throw new LabError(
    LabErrorCodes.NOT_FOUND,
    `no running local lab (looked for ${looked}${stale.length > 0 ? `; stale: ${stale.join(', ')}` : ''}). ` +
      'Start one with `npm start` (PITWALL_LOCAL_DIR if it runs elsewhere), or point the command at a site with PITWALL_SITE, PITWALL_NATS_URL, PITWALL_PARTITIONS ' +
      '(and PITWALL_PEER_SITE, PITWALL_HOME_PARTITIONS for two sites; docs/configuration.md)',
  )
}
