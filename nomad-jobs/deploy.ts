/**
 * `pitwall deploy --site <name> [--plan] [--job <job>]...`: deploys a site's Nomad jobs in order (nats, worker,
 * projector, gateway, controller, prometheus, grafana). For each job: parse (the agent's /v1/jobs/parse, with the site's var
 * file), plan with a diff, then register with check-and-set (EnforceIndex at the plan's JobModifyIndex, so a
 * job changed by someone else in between is refused, not overwritten) and follow the deployment (blocking
 * queries) until it is successful, or failed and rolled back by auto_revert. `--plan` stops after the diff.
 * `--skip <job>` leaves a job out (the first deployment of two sites deploys the site controllers last: a
 * controller started while its peer site does not exist yet would take the peer's home partitions over).
 * `--write-vars` rewrites nomad-jobs/vars/ and ansible/inventory/local.yml from the embedded topology
 * (sites/local-topology.ts).
 *
 * Flags are parsed by actors/args.ts (node:util parseArgs) like every command: `--help`; an unknown flag, a flag
 * given twice (but --job and --skip, which repeat) or one without its value is PW_CONFIG_INVALID naming the flag.
 *
 * Exit codes: 0 deployed (or planned), 1 failed, 2 usage, 3 rolled back. Settings: NOMAD_ADDR, NOMAD_TOKEN,
 * NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY (docs/deploy.md).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { type CommandSpec, commandHelp, ConfigError, flagString, parseCommand } from '../actors/mod.js'
import { renderInventory } from '../ansible/inventory.js'
import { localTopology } from '../sites/local-topology.js'
import { siteOf } from '../sites/topology.js'
import {
  type Deployment,
  type FieldDiff,
  type Job,
  type JobDiff,
  NomadClient,
  type NomadClientOptions,
  nomadOptionsFromEnv,
  type ObjectDiff,
} from './client.js'
import { NomadError, NomadErrorCodes } from './errors.js'
import { JOB_IDS, JOBS, JOBS_DIR, type JobName, readJobHcl, renderSiteVarFiles } from './jobs.js'

export interface DeployOptions {
  site: string
  plan: boolean
  jobs: JobName[]
  /** Directory holding <site>/<job>.vars.hcl (default nomad-jobs/vars). */
  varsDir: string
  /** Longest wait for one job's deployment, ms. */
  timeoutMs: number
  /** Longest single blocking query, ms. */
  waitMs: number
  /** --write-vars: rewrite the var files and the inventory instead of deploying. */
  writeVars?: boolean
}

export interface DeployIo {
  env?: NodeJS.ProcessEnv
  out?: (line: string) => void
  err?: (line: string) => void
  /** Client options instead of the NOMAD_* environment (tests). */
  nomad?: NomadClientOptions
}

const USAGE =
  'usage: pitwall deploy --site <name> [--plan] [--job <nats|worker|projector|gateway|controller|prometheus|grafana>]... [--skip <job>]... [--vars-dir <dir>] [--timeout <seconds>] | pitwall deploy --write-vars'

/** The flags of `pitwall deploy` (node:util parseArgs through parseCommand). */
export const DEPLOY_SPEC: CommandSpec = {
  usage:
    'pitwall deploy --site <name> [--plan] [--job <job>]... [--skip <job>]... [--vars-dir <dir>] [--timeout <seconds>] | pitwall deploy --write-vars',
  summary: `deploys a site's Nomad jobs in order (${JOBS.join(', ')}): parse, plan with a diff, register with check-and-set, follow the deployment`,
  flags: [
    { name: 'site', type: 'string', value: '<name>', help: 'the site to deploy (required)' },
    { name: 'plan', type: 'boolean', help: "stop after the plan's diff" },
    { name: 'job', type: 'string', value: '<job>', multiple: true, help: 'deploy only this job (repeatable)' },
    { name: 'skip', type: 'string', value: '<job>', multiple: true, help: 'leave this job out (repeatable)' },
    {
      name: 'vars-dir',
      type: 'string',
      value: '<dir>',
      help: 'directory of <site>/<job>.vars.hcl (default nomad-jobs/vars)',
    },
    {
      name: 'timeout',
      type: 'string',
      value: '<seconds>',
      help: "longest wait for one job's deployment (default 600)",
    },
    {
      name: 'write-vars',
      type: 'boolean',
      help: 'rewrite nomad-jobs/vars/ and ansible/inventory/local.yml from the embedded topology',
    },
  ],
}

/**
 * Parses the command line (not --help, which deployMain answers). Flag errors are PW_CONFIG_INVALID naming the flag;
 * a missing --site, an unknown job or --job with --skip are PW_DEPLOY_USAGE.
 */
export function parseDeployArgs(argv: string[]): DeployOptions {
  const p = parseCommand(argv, DEPLOY_SPEC)
  if (p.help) throw new ConfigError('--help', 'deployMain answers --help')
  const o: DeployOptions = {
    site: flagString(p, 'site') ?? '',
    plan: p.values.plan === true,
    jobs: [],
    varsDir: flagString(p, 'vars-dir') ?? join(JOBS_DIR, 'vars'),
    timeoutMs: 600_000,
    waitMs: 30_000,
  }
  if (p.values['write-vars'] === true) return { ...o, writeVars: true }
  const jobArg = (a: string, j: string): JobName => {
    if (!(JOBS as readonly string[]).includes(j))
      throw new NomadError(NomadErrorCodes.USAGE, `${a}: unknown job '${j}' (jobs: ${JOBS.join(', ')})`)
    return j as JobName
  }
  const list = (name: string): string[] => (Array.isArray(p.values[name]) ? p.values[name] : [])
  o.jobs = list('job').map((j) => jobArg('--job', j))
  const skip = new Set(list('skip').map((j) => jobArg('--skip', j)))
  const timeout = flagString(p, 'timeout')
  if (timeout !== undefined) {
    const s = Number(timeout)
    if (!Number.isFinite(s) || s <= 0) throw new NomadError(NomadErrorCodes.USAGE, '--timeout: seconds > 0')
    o.timeoutMs = s * 1000
  }
  if (o.site === '') throw new NomadError(NomadErrorCodes.USAGE, `--site is required\n${USAGE}`)
  if (o.jobs.length > 0 && skip.size > 0)
    throw new NomadError(NomadErrorCodes.USAGE, `--job and --skip exclude each other\n${USAGE}`)
  if (o.jobs.length === 0) o.jobs = JOBS.filter((j) => !skip.has(j))
  return o
}

function fieldLine(f: FieldDiff, indent: string): string {
  const sign = f.Type === 'Added' ? '+' : f.Type === 'Deleted' ? '-' : '+/-'
  const ann = f.Annotations && f.Annotations.length > 0 ? ` (${f.Annotations.join(', ')})` : ''
  if (f.Type === 'Added') return `${indent}+ ${f.Name}: ${JSON.stringify(f.New)}${ann}`
  if (f.Type === 'Deleted') return `${indent}- ${f.Name}: ${JSON.stringify(f.Old)}${ann}`
  return `${indent}${sign} ${f.Name}: ${JSON.stringify(f.Old)} => ${JSON.stringify(f.New)}${ann}`
}

function objectLines(o: ObjectDiff, indent: string, out: string[]): void {
  if (o.Type === 'None') return
  const sign = o.Type === 'Added' ? '+' : o.Type === 'Deleted' ? '-' : '+/-'
  out.push(`${indent}${sign} ${o.Name} {`)
  for (const f of o.Fields ?? []) if (f.Type !== 'None') out.push(fieldLine(f, `${indent}  `))
  for (const c of o.Objects ?? []) objectLines(c, `${indent}  `, out)
  out.push(`${indent}  }`)
}

/** A plan's diff in the style of `nomad job plan`. */
export function formatDiff(d: JobDiff | null): string[] {
  if (!d || d.Type === 'None') return ['  (no changes)']
  const sign = d.Type === 'Added' ? '+' : d.Type === 'Deleted' ? '-' : '+/-'
  const out = [`${sign} Job: ${JSON.stringify(d.ID)}`]
  for (const f of d.Fields ?? []) if (f.Type !== 'None') out.push(fieldLine(f, '  '))
  for (const o of d.Objects ?? []) objectLines(o, '  ', out)
  for (const tg of d.TaskGroups ?? []) {
    if (tg.Type === 'None' && !Object.keys(tg.Updates ?? {}).some((k) => k !== 'ignore')) continue
    const updates = Object.entries(tg.Updates ?? {})
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')
    const tsign = tg.Type === 'Added' ? '+' : tg.Type === 'Deleted' ? '-' : '+/-'
    out.push(`${tsign} Task Group: ${JSON.stringify(tg.Name)}${updates ? ` (${updates})` : ''}`)
    for (const f of tg.Fields ?? []) if (f.Type !== 'None') out.push(fieldLine(f, '  '))
    for (const o of tg.Objects ?? []) objectLines(o, '  ', out)
    for (const task of tg.Tasks ?? []) {
      if (task.Type === 'None') continue
      const ts = task.Type === 'Added' ? '+' : task.Type === 'Deleted' ? '-' : '+/-'
      out.push(
        `  ${ts} Task: ${JSON.stringify(task.Name)}${task.Annotations?.length ? ` (${task.Annotations.join(', ')})` : ''}`,
      )
      for (const f of task.Fields ?? []) if (f.Type !== 'None') out.push(fieldLine(f, '    '))
      for (const o of task.Objects ?? []) objectLines(o, '    ', out)
    }
  }
  return out
}

/** One progress line of a deployment. */
export function formatProgress(d: Deployment): string {
  const groups = Object.entries(d.TaskGroups).map(([name, s]) => {
    const canary =
      s.DesiredCanaries > 0
        ? `, canaries ${s.PlacedCanaries?.length ?? 0}/${s.DesiredCanaries}${s.Promoted ? ' promoted' : ''}`
        : ''
    return `${name}: ${s.PlacedAllocs}/${s.DesiredTotal} placed, ${s.HealthyAllocs} healthy, ${s.UnhealthyAllocs} unhealthy${canary}`
  })
  return `  deployment ${d.ID.slice(0, 8)} v${d.JobVersion} ${d.Status}: ${groups.join('; ')}${d.StatusDescription ? ` (${d.StatusDescription})` : ''}`
}

const TERMINAL = new Set(['successful', 'failed', 'cancelled'])

/** Follows the job's deployments from `version` on until one ends; returns the final deployment of `version` and the rollback's, if any. */
async function follow(
  nomad: NomadClient,
  jobId: string,
  version: number,
  o: DeployOptions,
  out: (l: string) => void,
): Promise<{ final: Deployment; rollback?: Deployment }> {
  const deadline = Date.now() + o.timeoutMs
  const remaining = (): number => {
    const left = deadline - Date.now()
    if (left <= 0)
      throw new NomadError(
        NomadErrorCodes.TIMEOUT,
        `${jobId}: the deployment of version ${version} did not finish within ${o.timeoutMs / 1000} s`,
        { retryable: true },
      )
    return left
  }
  // Wait for the deployment of our version to appear.
  let index = 0
  let dep: Deployment | null = null
  for (;;) {
    const r = await nomad.latestDeployment(jobId, { index, waitMs: Math.min(o.waitMs, remaining()) })
    index = r.index
    if (r.body && r.body.JobVersion >= version) {
      dep = r.body
      break
    }
  }
  let last = ''
  let depIndex = 0
  for (;;) {
    const line = formatProgress(dep)
    if (line !== last) out(line)
    last = line
    if (TERMINAL.has(dep.Status)) break
    const r = await nomad.deployment(dep.ID, { index: depIndex, waitMs: Math.min(o.waitMs, remaining()) })
    depIndex = r.index
    dep = r.body
  }
  const revert = dep.Status === 'failed' && Object.values(dep.TaskGroups).some((s) => s.AutoRevert)
  if (!revert) return { final: dep }
  // auto_revert registers the last stable version as a new version, with its own deployment: follow it too.
  let rollback: Deployment | null = null
  index = 0
  for (;;) {
    const r = await nomad.latestDeployment(jobId, { index, waitMs: Math.min(o.waitMs, remaining()) })
    index = r.index
    if (r.body && r.body.ID !== dep.ID && r.body.JobVersion > dep.JobVersion) {
      rollback = r.body
      break
    }
  }
  out(`  rolling back: ${dep.StatusDescription}`)
  last = ''
  depIndex = 0
  for (;;) {
    const line = formatProgress(rollback)
    if (line !== last) out(line)
    last = line
    if (TERMINAL.has(rollback.Status)) break
    const r = await nomad.deployment(rollback.ID, { index: depIndex, waitMs: Math.min(o.waitMs, remaining()) })
    depIndex = r.index
    rollback = r.body
  }
  return { final: dep, rollback }
}

/** Plans and (unless o.plan) registers and follows one job. */
export async function deployJob(
  nomad: NomadClient,
  job: JobName,
  o: DeployOptions,
  out: (l: string) => void,
): Promise<'unchanged' | 'planned' | 'deployed'> {
  const hcl = await readJobHcl(job)
  const vars = await readFile(join(o.varsDir, o.site, `${job}.vars.hcl`), 'utf8')
  const parsed: Job = await nomad.parseJob(hcl, vars)
  if (parsed.ID !== JOB_IDS[job])
    throw new NomadError(NomadErrorCodes.PARSE, `${job}.hcl: job id ${parsed.ID}, expected ${JOB_IDS[job]}`)
  const plan = await nomad.planJob(parsed)
  out(
    `${parsed.ID} (site ${o.site}, datacenters ${parsed.Datacenters.join(',')}): plan at job modify index ${plan.JobModifyIndex}`,
  )
  for (const l of formatDiff(plan.Diff)) out(`  ${l}`)
  if (plan.Warnings) out(`  warnings: ${plan.Warnings}`)
  if (plan.FailedTGAllocs && Object.keys(plan.FailedTGAllocs).length > 0)
    out(`  WARNING: the scheduler could not place: ${Object.keys(plan.FailedTGAllocs).join(', ')}`)
  if (o.plan) return 'planned'
  if (!plan.Diff || plan.Diff.Type === 'None') {
    out('  unchanged, not registered')
    return 'unchanged'
  }
  const reg = await nomad.registerJob(parsed, plan.JobModifyIndex)
  const current = (await nomad.readJob(parsed.ID)).body
  const version = current?.Version ?? 0
  out(`  registered version ${version} (eval ${reg.EvalID.slice(0, 8)}, job modify index ${reg.JobModifyIndex})`)
  const { final, rollback } = await follow(nomad, parsed.ID, version, o, out)
  if (final.Status === 'successful') {
    out(`  ${parsed.ID} version ${version} is healthy`)
    return 'deployed'
  }
  if (rollback) {
    throw new NomadError(
      NomadErrorCodes.ROLLED_BACK,
      `${parsed.ID}: version ${version} failed (${final.StatusDescription}); rolled back to version ${rollback.JobVersion} (${rollback.Status})`,
    )
  }
  throw new NomadError(
    NomadErrorCodes.DEPLOY_FAILED,
    `${parsed.ID}: version ${version} ${final.Status}: ${final.StatusDescription}`,
  )
}

/** Entry point of `pitwall deploy`; returns the exit code. */
export async function deployMain(argv: string[], io: DeployIo = {}): Promise<number> {
  const out = io.out ?? ((l: string) => process.stdout.write(`${l}\n`))
  const err = io.err ?? ((l: string) => process.stderr.write(`${l}\n`))
  let parsed = false
  try {
    if (parseCommand(argv, DEPLOY_SPEC).help) {
      out(commandHelp(DEPLOY_SPEC))
      return 0
    }
    const o = parseDeployArgs(argv)
    parsed = true
    if (o.writeVars === true) {
      for (const [rel, text] of renderSiteVarFiles(localTopology())) {
        const file = join(JOBS_DIR, rel)
        await mkdir(dirname(file), { recursive: true })
        await writeFile(file, text)
        out(`wrote ${file}`)
      }
      const inv = join(JOBS_DIR, '..', 'ansible', 'inventory', 'local.yml')
      await writeFile(inv, renderInventory(localTopology()))
      out(`wrote ${inv}`)
      return 0
    }
    siteOf(localTopology(), o.site)
    const nomad = new NomadClient(io.nomad ?? nomadOptionsFromEnv(io.env ?? process.env))
    const done: string[] = []
    for (const job of o.jobs) {
      done.push(`${JOB_IDS[job]}: ${await deployJob(nomad, job, o, out)}`)
    }
    out(`site ${o.site}: ${done.join(', ')}`)
    return 0
  } catch (e) {
    const code =
      e instanceof NomadError || (e instanceof Error && 'code' in e)
        ? String((e as { code: unknown }).code)
        : 'PW_DEPLOY_FAILED'
    err(`${code}: ${e instanceof Error ? e.message : String(e)}`)
    // A flag error is a usage error (2); a bad setting found later (an unknown --site) is a failure (1).
    if (e instanceof ConfigError && !parsed) {
      err('see pitwall deploy --help')
      return 2
    }
    if (e instanceof NomadError)
      return e.code === NomadErrorCodes.USAGE ? 2 : e.code === NomadErrorCodes.ROLLED_BACK ? 3 : 1
    return 1
  }
}
