/**
 * `pitwall mqtt-users`: nats-server authorization for MQTT devices, generated from the gateway's device
 * credentials (PostgreSQL), so a device publishing over nats-server's MQTT listener is bound to its own entity
 * as on HTTP. One user per active credential: username = credential id, password = bcrypt of its secret (the
 * part after the dot of the token; stored at issue, db.ts), permission to publish on exactly its entity's
 * partitioned subject `tlm.<site>.<partition>.<kind>.<id>` (permissions are checked after the server's
 * partition mapping) and to subscribe to nothing. Service users come from a file of `name:<bcrypt hash>` lines
 * kept outside the repository. The runtime's processes connect without credentials, so `anonymous` maps
 * anonymous core NATS connections to a full-permission user (`no_auth_user`) and adds a deny-all user that
 * the server's `mqtt { no_auth_user }` must name: without it nats-server would map anonymous MQTT clients to
 * the full-permission user too. The file is written atomically (temp file +
 * rename, mode 0600) and nats-server is told to reload (SIGHUP): revocation and rotation need no restart, and a
 * revoked device's open MQTT connection is closed by the reload.
 */
import { randomBytes } from 'node:crypto'
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import bcrypt from 'bcryptjs'
import pg from 'pg'
import {
  type CommandSpec,
  commandHelp,
  compileConfig,
  ConfigError,
  flagString,
  ID_PATTERN,
  optionsFromEnv,
  parseCommand,
  partitionOf,
  tlmSubject,
} from '../actors/mod.js'
import { activeCredentials, migrate, type MqttCredential } from './db.js'
import { GATEWAY_AUTH_ENV } from './config.js'

/** A NATS user with full permissions (workers, projector, gateway). */
export interface ServiceUser {
  user: string
  /** bcrypt hash (`$2a$`/`$2b$`/`$2y$`); plain passwords are refused so none is ever written out. */
  hash: string
}

export interface MqttUsersOptions {
  site: string
  partitions: number
  serviceUsers: readonly ServiceUser[]
  /** Map anonymous core NATS connections (the runtime's) to ANON_USER, and add MQTT_ANON_USER (deny all). */
  anonymous?: boolean
  /** The file this one replaces: its anonymous users' passwords are kept (a changed one would disconnect the runtime). */
  previous?: string
}

/** The user anonymous core connections become (full permissions; its password is random and never shown). */
export const ANON_USER = 'pitwall-anon'
/** The user the server's `mqtt { no_auth_user }` must name: anonymous MQTT clients may do nothing. */
export const MQTT_ANON_USER = 'pitwall-mqtt-anon'

const BCRYPT = /^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$/
const USER = /^[A-Za-z0-9_-]{1,64}$/

/** Parses a service users file: `name:<bcrypt hash>` per line, `#` comments and blank lines ignored. */
export function parseServiceUsers(text: string, source = 'service users'): ServiceUser[] {
  const users: ServiceUser[] = []
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const colon = line.indexOf(':')
    const user = colon < 0 ? line : line.slice(0, colon)
    const hash = colon < 0 ? '' : line.slice(colon + 1)
    if (!USER.test(user) || user.startsWith('dc_'))
      throw new ConfigError(
        'mqtt.serviceUsers',
        `${source} line ${i + 1}: user must match ${USER.source} and not start with dc_ (device credentials)`,
      )
    if (!BCRYPT.test(hash))
      throw new ConfigError(
        'mqtt.serviceUsers',
        `${source} line ${i + 1}: password must be a bcrypt hash (pitwall mqtt-users --hash < password)`,
      )
    if (users.some((u) => u.user === user))
      throw new ConfigError('mqtt.serviceUsers', `${source} line ${i + 1}: user ${user} repeated`)
    users.push({ user, hash })
  })
  return users
}

/** The authorization block for nats-server (an `include` file); devices without an MQTT hash are left out. */
export function renderMqttUsers(
  devices: readonly MqttCredential[],
  o: MqttUsersOptions,
  now = new Date(),
): { text: string; devices: number; skipped: number } {
  if (o.serviceUsers.length === 0 && o.anonymous !== true) {
    throw new ConfigError(
      'mqtt.serviceUsers',
      "give service users or --anonymous: with authorization on, the runtime's own connections must get in too",
    )
  }
  const taken = o.serviceUsers.find((u) => u.user === ANON_USER || u.user === MQTT_ANON_USER)
  if (taken) throw new ConfigError('mqtt.serviceUsers', `${taken.user} is reserved`)
  const q = (s: string): string => JSON.stringify(s)
  const lines = o.serviceUsers.map((u) => `    {user: ${q(u.user)}, password: ${q(u.hash)}}`)
  if (o.anonymous === true) {
    // nats-server 2.9 cannot map no_auth_user to a bcrypt-protected user, so this one has a plain password:
    // random, told to nobody (the file is 0600), nobody logs in as it. Both are kept from the previous file:
    // a reload that changes a user's password closes that user's connections, here all of the runtime's.
    const kept = (user: string, pattern: RegExp): string | undefined => {
      const m = new RegExp(`\\{user: "${user}", password: "([^"]+)"`).exec(o.previous ?? '')
      return m?.[1] !== undefined && pattern.test(m[1]) ? m[1] : undefined
    }
    const anonPw = kept(ANON_USER, /^[A-Za-z0-9_-]{43}$/) ?? randomBytes(32).toString('base64url')
    const mqttAnonHash = kept(MQTT_ANON_USER, BCRYPT) ?? bcrypt.hashSync(randomBytes(32).toString('base64url'), 10)
    lines.push(`    {user: ${q(ANON_USER)}, password: ${q(anonPw)}}  # anonymous core connections (the runtime)`)
    lines.push(
      `    {user: ${q(MQTT_ANON_USER)}, password: ${q(mqttAnonHash)}, permissions: {publish: {deny: [">"]}, subscribe: {deny: [">"]}}}  # mqtt { no_auth_user }`,
    )
  }
  let skipped = 0
  for (const d of devices) {
    // Ids come from the database: checked again, since they become subject tokens and config text.
    if (
      d.mqttHash === null ||
      !BCRYPT.test(d.mqttHash) ||
      !ID_PATTERN.test(d.entity) ||
      !/^dc_[0-9a-f]{24}$/.test(d.id)
    ) {
      skipped++
      continue
    }
    const subject = tlmSubject(o.site, partitionOf(d.kind, d.entity, o.partitions), d.kind, d.entity)
    lines.push(
      `    {user: ${q(d.id)}, password: ${q(d.mqttHash)}, permissions: {publish: {allow: [${q(subject)}]}, subscribe: {deny: [">"]}}}  # ${d.kind} ${d.entity}`,
    )
  }
  const text = [
    `# Generated by pitwall mqtt-users at ${now.toISOString()}: ${devices.length - skipped} device(s), site ${o.site}, ${o.partitions} partitions.`,
    "# Do not edit: regenerate from the gateway's device credentials and reload nats-server. Passwords are bcrypt hashes.",
    'authorization {',
    '  users: [',
    ...lines,
    '  ]',
    '}',
    ...(o.anonymous === true ? [`no_auth_user: ${q(ANON_USER)}`] : []),
    '',
  ].join('\n')
  return { text, devices: devices.length - skipped, skipped }
}

/** Writes `text` to `path` atomically (readers never see half a file) with mode 0600. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`)
  await writeFile(tmp, text, { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
}

/** Tells nats-server to reload its configuration (what `nats-server --signal reload=<pid>` does). */
export function reloadNats(pid: number): void {
  process.kill(pid, 'SIGHUP')
}

/** Reads the credentials, writes the include file; returns what was written. */
export async function generateMqttUsers(
  pool: pg.Pool,
  out: string,
  o: MqttUsersOptions,
): Promise<{ devices: number; skipped: number }> {
  const previous = await readFile(out, 'utf8').catch((err: unknown) => {
    if ((err as { code?: string }).code === 'ENOENT') return undefined
    throw err
  })
  const r = renderMqttUsers(await activeCredentials(pool), { ...o, ...(previous === undefined ? {} : { previous }) })
  await writeAtomically(out, r.text)
  return { devices: r.devices, skipped: r.skipped }
}

export interface MqttUsersArgs {
  out: string
  /** Service users file; none with `anonymous` only. */
  serviceUsers?: string
  anonymous?: true
  /** nats-server's pid, or a file holding it (its `pid_file`). */
  reload?: { pid: number } | { pidFile: string }
  hash?: true
}

const USAGE =
  'usage: pitwall mqtt-users --out <file> [--service-users <file>] [--anonymous] [--reload <pid> | --pid-file <file>]\n' +
  '       pitwall mqtt-users --hash < password    (prints a bcrypt hash for the service users file)'

/** The flags of `pitwall mqtt-users` (node:util parseArgs through parseCommand). */
export const MQTT_USERS_SPEC: CommandSpec = {
  usage:
    'pitwall mqtt-users --out <file> [--service-users <file>] [--anonymous] [--reload <pid> | --pid-file <file>]  |  pitwall mqtt-users --hash < password',
  summary:
    'write the MQTT users file of this site\'s nats-servers from the device credentials (gateway/README.md, "MQTT")',
  flags: [
    { name: 'out', type: 'string', value: '<file>', help: 'the users file to write' },
    {
      name: 'service-users',
      type: 'string',
      value: '<file>',
      help: "name:<bcrypt hash> lines for the runtime's own connections",
    },
    { name: 'anonymous', type: 'boolean', help: 'let connections without a user in (as the anonymous user)' },
    { name: 'reload', type: 'string', value: '<pid>', help: 'then tell this nats-server to reload' },
    { name: 'pid-file', type: 'string', value: '<file>', help: 'or the nats-server whose pid is in this file' },
    {
      name: 'hash',
      type: 'boolean',
      help: 'print a bcrypt hash of the password on stdin (for --service-users), nothing else',
    },
  ],
}

/** Parses the command's arguments; throws ConfigError naming the flag (with the usage) on anything else. */
export function parseMqttUsersArgs(args: readonly string[]): MqttUsersArgs {
  const p = parseCommand(args, MQTT_USERS_SPEC)
  if (p.values.hash === true) {
    if (args.length !== 1) throw new ConfigError('--hash', `takes no other flag\n${USAGE}`)
    return { out: '', hash: true }
  }
  const flags = new Map<string, string>()
  for (const k of ['out', 'service-users', 'reload', 'pid-file']) {
    const v = flagString(p, k)
    if (v !== undefined) flags.set(`--${k}`, v)
  }
  const anonymous = p.values.anonymous === true
  const out = flags.get('--out')
  const serviceUsers = flags.get('--service-users')
  if (out === undefined) throw new ConfigError('mqtt-users', `--out is required\n${USAGE}`)
  if (serviceUsers === undefined && !anonymous)
    throw new ConfigError('mqtt-users', `--service-users, --anonymous or both\n${USAGE}`)
  const a: MqttUsersArgs = { out }
  if (serviceUsers !== undefined) a.serviceUsers = serviceUsers
  if (anonymous) a.anonymous = true
  const pid = flags.get('--reload')
  const pidFile = flags.get('--pid-file')
  if (pid !== undefined && pidFile !== undefined)
    throw new ConfigError('mqtt-users', `--reload and --pid-file: one of them\n${USAGE}`)
  if (pid !== undefined) {
    if (!/^[1-9][0-9]{0,9}$/.test(pid))
      throw new ConfigError('mqtt-users', `--reload needs nats-server's pid, got ${JSON.stringify(pid)}`)
    a.reload = { pid: Number(pid) }
  }
  if (pidFile !== undefined) a.reload = { pidFile }
  return a
}

/**
 * The command: site and partitions from PITWALL_SITE / PITWALL_PARTITIONS (the runtime's settings), the
 * credential database from PITWALL_GATEWAY_DATABASE_URL. Bad arguments or settings throw ConfigError
 * (PW_CONFIG_INVALID, naming the setting).
 */
export async function mqttUsersMain(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: { out(s: string): void; readStdin(): Promise<string> },
): Promise<number> {
  if (parseCommand(args, MQTT_USERS_SPEC).help) {
    io.out(commandHelp(MQTT_USERS_SPEC))
    return 0
  }
  const a = parseMqttUsersArgs(args)
  if (a.hash) {
    const password = (await io.readStdin()).replace(/\r?\n$/, '')
    if (password.length < 16 || Buffer.byteLength(password) > 72)
      throw new ConfigError('mqtt-users', 'the password must be 16..72 bytes (bcrypt reads at most 72)')
    io.out(await bcrypt.hash(password, 10))
    return 0
  }
  const cfg = compileConfig(optionsFromEnv(env))
  const url = env[GATEWAY_AUTH_ENV.databaseUrl]
  if (url === undefined || url === '')
    throw new ConfigError('auth.databaseUrl', `${GATEWAY_AUTH_ENV.databaseUrl} is required (the device credentials)`)
  const serviceUsers =
    a.serviceUsers === undefined ? [] : parseServiceUsers(await readFile(a.serviceUsers, 'utf8'), a.serviceUsers)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  try {
    // The same migrations as the gateway: the mqtt_hash column exists even if no gateway of this build ran yet.
    await migrate(pool)
    const r = await generateMqttUsers(pool, a.out, {
      site: cfg.site,
      partitions: cfg.partitions,
      serviceUsers,
      ...(a.anonymous ? { anonymous: true } : {}),
    })
    io.out(
      `wrote ${a.out}: ${serviceUsers.length} service user(s), ${r.devices} device(s)${r.skipped ? `, ${r.skipped} credential(s) without an MQTT hash left out (issued before MQTT support: issue new ones)` : ''}`,
    )
  } finally {
    await pool.end()
  }
  if (a.reload) {
    const pid = 'pid' in a.reload ? a.reload.pid : Number((await readFile(a.reload.pidFile, 'utf8')).trim())
    if (!Number.isSafeInteger(pid) || pid <= 0)
      throw new ConfigError('mqtt-users', `no pid in ${'pidFile' in a.reload ? a.reload.pidFile : 'the arguments'}`)
    reloadNats(pid)
    io.out(`nats-server ${pid} told to reload`)
  }
  return 0
}
