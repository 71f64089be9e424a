/**
 * The Nomad job files (nomad-jobs/*.hcl): each parses with @cdktf/hcl2json; each has described variables, the
 * datacenter from a variable, update with canary + auto_revert, restart policy, resources, a check on every
 * service, templates that read peers from Consul; the checked-in per-site var files equal what sites/ renders;
 * and the tasks run the commands and environment variables of the local launcher (sites/local.ts).
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { parse } from '@cdktf/hcl2json'
import { localTopology } from '../../sites/local-topology.js'
import {
  controllerSpec,
  gatewaySpec,
  projectorSpec,
  type ServiceSpec,
  topologySiteEnv,
  workerSpec,
} from '../../sites/local.js'
import { peerOf, siteOf, type Topology } from '../../sites/topology.js'
import {
  CONTROLLER_PORT,
  FAILOVER_AFTER_MS,
  JOB_IDS,
  jobFile,
  JOBS,
  JOBS_DIR,
  NOMAD_ONLY_ENV,
  readJobHcl,
  renderSiteVarFiles,
  renderVarFile,
  siteVars,
  varsFile,
  WORKER_DRAIN_BUDGET_S,
} from '../../nomad-jobs/jobs.js'
import { declaredVariables, type Json, type JsonObject, parseJob } from '../helpers/nomad-hcl.js'
import { join } from 'node:path'

const topo = localTopology()

/** The environment the local launcher gives a site's services (cmd/lab.ts): the two-site siteEnv, with a peer. */
const twoSiteEnv = (topo: Topology, name: string): Record<string, string> => topologySiteEnv(topo, name)
const obj = (v: Json | undefined): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {})
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : [])

t.test('every HCL file parses with @cdktf/hcl2json and declares one job with described variables', async (t) => {
  for (const job of JOBS) {
    const doc = (await parse(`${job}.hcl`, await readJobHcl(job))) as JsonObject
    t.same(Object.keys(obj(doc.job)), [JOB_IDS[job]], `${job}: one job, id ${JOB_IDS[job]}`)
    const vars = declaredVariables(doc)
    t.ok(
      vars.has('datacenter') && vars.has('region') && vars.has('site'),
      `${job}: datacenter, region, site are variables`,
    )
    for (const [name, v] of vars) t.ok((v.description ?? '').length > 10, `${job}: variable ${name} is described`)
    const raw = obj(arr(obj(doc.job)[JOB_IDS[job]])[0])
    t.same(raw.datacenters, ['${var.datacenter}'], `${job}: datacenters = [var.datacenter]`)
    t.equal(raw.region, '${var.region}', `${job}: region = var.region`)
  }
})

t.test('checked-in var files equal the ones rendered from sites/', async (t) => {
  const rendered = renderSiteVarFiles(topo)
  t.equal(rendered.size, topo.sites.length * JOBS.length)
  for (const [rel, text] of rendered)
    t.equal(
      await readFile(join(JOBS_DIR, rel), 'utf8'),
      text,
      `${rel} is up to date (npx tsx nomad-jobs/write-vars.ts)`,
    )
})

t.test(
  'each job: update with canary + auto_revert, restart, resources, checks on every service, Consul templates',
  async (t) => {
    for (const site of topo.sites) {
      for (const job of JOBS) {
        const j = await parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))
        const at = `${site.name}/${job}`
        t.same(j.Datacenters, [site.nomadDatacenter], `${at}: datacenter from the var file`)
        t.equal(j.Region, site.nomadDatacenter, `${at}: region`)
        const up = obj(j.Update)
        // One controller per site: a canary would run two, which could both fail over; it is replaced instead.
        if (job === 'controller') t.equal(Number(up.Canary), 0, `${at}: no canary (one controller per site)`)
        else t.ok(Number(up.Canary) >= 1, `${at}: canary`)
        t.equal(up.AutoRevert, true, `${at}: auto_revert`)
        t.equal(up.HealthCheck, 'checks', `${at}: deployment health from the Consul checks`)
        for (const g of arr(j.TaskGroups).map(obj)) {
          const rp = obj(g.RestartPolicy)
          t.ok(Number(rp.Attempts) > 0 && rp.Mode === 'delay', `${at}: restart policy`)
          const services = arr(g.Services).map(obj)
          t.ok(services.length > 0, `${at}: registers with Consul`)
          for (const s of services) {
            t.ok(arr(s.Checks).length > 0, `${at}: service ${String(s.Name)} has checks`)
            t.ok(arr(s.Tags).includes(`site-${site.name}`), `${at}: service ${String(s.Name)} tagged with the site`)
          }
          for (const task of arr(g.Tasks).map(obj)) {
            const r = obj(task.Resources)
            t.ok(Number(r.CPU) > 0 && Number(r.MemoryMB) > 0, `${at}: resources`)
            t.ok(Number(task.KillTimeout) >= 5e9, `${at}: kill_timeout`)
            t.ok(arr(task.Templates).length > 0, `${at}: templates`)
          }
        }
      }
    }
  },
)

t.test('templates read peers from Consul; the dialing site reads the peer datacenter', async (t) => {
  for (const site of topo.sites) {
    const nats = await parseJob(await readJobHcl('nats'), await readFile(varsFile(site.name, 'nats'), 'utf8'))
    const tmpl = String(obj(arr(obj(arr(obj(arr(nats.TaskGroups)[0]).Tasks)[0]).Templates)[0]).EmbeddedTmpl)
    t.match(tmpl, 'service "pitwall-nats-cluster|any"', `${site.name}: routes from Consul`)
    t.match(tmpl, `domain: "${site.domain}"`, `${site.name}: JetStream domain`)
    t.match(
      tmpl,
      `"tlm.${site.name}.*.*": "tlm.${site.name}.{{partition(16,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}"`,
      `${site.name}: partition mapping`,
    )
    const peer = topo.sites.find((s) => s !== site)!
    if (site.leafnodeRemotes.length > 0)
      t.match(
        tmpl,
        `service "pitwall-nats-leaf@${peer.consulDatacenter}"`,
        `${site.name} dials ${peer.name} via Consul`,
      )
    else t.match(tmpl, 'if ne "" ""', `${site.name} only listens`)
  }
  for (const job of ['worker', 'projector', 'gateway', 'controller'] as const) {
    const j = await parseJob(await readJobHcl(job), await readFile(varsFile('a', job), 'utf8'))
    const all = arr(obj(arr(obj(arr(j.TaskGroups)[0]).Tasks)[0]).Templates)
      .map((x) => String(obj(x).EmbeddedTmpl))
      .join('\n')
    t.match(all, 'service "pitwall-nats"', `${job}: NATS URLs from Consul`)
    t.match(all, 'service "pitwall-postgres"', `${job}: PostgreSQL from Consul`)
  }
  for (const site of topo.sites) {
    const j = await parseJob(await readJobHcl('controller'), await readFile(varsFile(site.name, 'controller'), 'utf8'))
    const all = arr(obj(arr(obj(arr(j.TaskGroups)[0]).Tasks)[0]).Templates)
      .map((x) => String(obj(x).EmbeddedTmpl))
      .join('\n')
    const peer = peerOf(topo, site.name)
    t.match(
      all,
      `service "pitwall-site@${peer.consulDatacenter}|any"`,
      `${site.name}/controller: the peer controller's address from the peer datacenter (${peer.consulDatacenter})`,
    )
    t.match(
      all,
      'nomadVar "nomad/jobs/pitwall-controller"',
      `${site.name}/controller: Consul token from a Nomad variable`,
    )
  }
})

/** Env variable names a task sets: its env block plus `NAME=` lines of templates with env = true. */
function envNames(task: JsonObject): Set<string> {
  const names = new Set(Object.keys(obj(task.Env)))
  for (const x of arr(task.Templates).map(obj)) {
    if (x.Envvars !== true) continue
    for (const m of String(x.EmbeddedTmpl).matchAll(/(?:^|\}\})\s*([A-Z][A-Z0-9_]*)=/gm)) names.add(m[1]!)
  }
  return names
}

t.test('tasks run the local launcher commands with the same variables (one source for both)', async (t) => {
  t.ok(WORKER_DRAIN_BUDGET_S >= 10, 'drain budget')
  for (const site of topo.sites) {
    const def = siteOf(topo, site.name)
    const env = twoSiteEnv(topo, site.name)
    t.ok(
      ['PITWALL_DOMAIN', 'PITWALL_PEER_SITE', 'PITWALL_PEER_DOMAIN', 'PITWALL_HOME_PARTITIONS'].every((k) => k in env),
      `${site.name}: the two-site siteEnv`,
    )
    type App = 'worker' | 'projector' | 'gateway' | 'controller'
    const specs: Record<App, ServiceSpec> = {
      worker: workerSpec(env, 0),
      projector: projectorSpec(env),
      gateway: gatewaySpec(env, { jwtSecret: 'x', apiKeys: 'y' }),
      controller: controllerSpec(env, CONTROLLER_PORT, 'http://peer:9481/healthz'),
    }
    for (const [job, spec] of Object.entries(specs) as Array<[App, ServiceSpec]>) {
      const at = `${site.name}/${job}`
      const j = await parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))
      const task = obj(arr(obj(arr(j.TaskGroups)[0]).Tasks)[0])
      const cfg = obj(task.Config)
      t.equal(cfg.command, '/usr/bin/node', `${at}: node`)
      t.same(cfg.args, [`/opt/pitwall/dist/${spec.script}`], `${at}: runs dist/${spec.script}`)
      const expected = new Set([...Object.keys(spec.env), ...(NOMAD_ONLY_ENV[job] ?? [])])
      t.same(
        [...envNames(task)].sort(),
        [...expected].sort(),
        `${at}: the same variable names as sites/local.ts (+ ${(NOMAD_ONLY_ENV[job] ?? []).join(', ') || 'nothing'})`,
      )
      const tenv = obj(task.Env)
      t.equal(tenv.PITWALL_SITE, spec.env.PITWALL_SITE, `${at}: PITWALL_SITE value`)
      t.equal(tenv.PITWALL_PARTITIONS, spec.env.PITWALL_PARTITIONS, `${at}: PITWALL_PARTITIONS value`)
      for (const k of [
        'PITWALL_DEPLOYMENT',
        'PITWALL_DOMAIN',
        'PITWALL_PEER_SITE',
        'PITWALL_PEER_DOMAIN',
        'PITWALL_HOME_PARTITIONS',
      ]) {
        t.equal(tenv[k], spec.env[k], `${at}: ${k} = ${spec.env[k]} (the var file, from sites/)`)
      }
      if (job === 'controller') {
        t.equal(tenv.PITWALL_CONTROLLER_PORT, '${NOMAD_PORT_http}', `${at}: the controller listens on its Nomad port`)
        const g = obj(arr(j.TaskGroups)[0])
        t.equal(g.Count, 1, `${at}: one controller per site`)
        t.same(
          arr(g.Networks).map((n) => arr(obj(n).ReservedPorts)),
          [[{ Label: 'http', Value: CONTROLLER_PORT }]],
          `${at}: static port ${CONTROLLER_PORT} (the peer probes it)`,
        )
        t.same(
          arr(g.Services).map((x) => [obj(x).Name, arr(obj(x).Checks).map((c) => [obj(c).Type, obj(c).Path])]),
          [['pitwall-site', [['http', '/healthz']]]],
          `${at}: service pitwall-site, HTTP check on /healthz`,
        )
        t.ok(
          arr(obj(arr(g.Services)[0]).Tags).includes('metrics'),
          `${at}: tagged metrics (monitoring/prometheus-consul.yml scrapes pitwall-site with tag metrics)`,
        )
        t.equal(
          tenv.PITWALL_FAILOVER_AFTER_MS,
          String(FAILOVER_AFTER_MS),
          `${at}: failover after ${FAILOVER_AFTER_MS} ms (the controller's default)`,
        )
        t.equal(tenv.PITWALL_DISCOVERY, 'consul', `${at}: Consul health of the peer`)
        t.equal(tenv.PITWALL_CONSUL_DATACENTER, def.consulDatacenter, `${at}: its Consul datacenter`)
        t.equal(
          tenv.PITWALL_PEER_CONSUL_DATACENTER,
          peerOf(topo, site.name).consulDatacenter,
          `${at}: the peer's Consul datacenter`,
        )
        t.equal(task.KillSignal, 'SIGTERM', `${at}: SIGTERM stops it`)
      }
      if (job === 'worker') {
        for (const i of [0, 1, 2]) {
          t.equal(
            String(tenv.PITWALL_WORKER_ID).replace('${NOMAD_ALLOC_INDEX}', String(i)),
            workerSpec(env, i).env.PITWALL_WORKER_ID,
            `${at}: worker id of alloc ${i}`,
          )
        }
        t.ok(
          Number(task.KillTimeout) >= WORKER_DRAIN_BUDGET_S * 1e9,
          `${at}: kill_timeout >= drain budget ${WORKER_DRAIN_BUDGET_S} s`,
        )
        t.equal(task.KillSignal, 'SIGTERM', `${at}: SIGTERM drains`)
      }
      // PG URL: user and database from the var file, address from Consul: with Consul's answer substituted it
      // is the site's pgUrl.
      const tmpl = arr(task.Templates)
        .map((x) => String(obj(x).EmbeddedTmpl))
        .join('\n')
      const u = new URL(def.pgUrl)
      const pg = /PITWALL_PG_URL=postgres:\/\/([^@]+)@\{\{ \.Address \}\}:\{\{ \.Port \}\}\/(\S+?)(\{\{|$)/m.exec(tmpl)
      t.ok(pg, `${at}: PG URL template`)
      t.equal(
        `postgres://${pg?.[1]}@${u.hostname}:${u.port}/${pg?.[2]}`,
        def.pgUrl,
        `${at}: PG URL equals sites/ pgUrl once Consul answers`,
      )
    }
  }
  t.ok(jobFile('worker').endsWith('nomad-jobs/worker.hcl'))
})

t.test(
  'Prometheus scrapes every service tagged metrics: the Nomad job, the Ansible role and monitoring/prometheus-consul.yml agree',
  async (t) => {
    const tagged: string[] = []
    for (const job of JOBS) {
      const j = await parseJob(await readJobHcl(job), await readFile(varsFile('a', job), 'utf8'))
      for (const g of arr(j.TaskGroups).map(obj)) {
        for (const svc of arr(g.Services).map(obj)) if (arr(svc.Tags).includes('metrics')) tagged.push(String(svc.Name))
      }
    }
    t.same(
      tagged.sort(),
      ['pitwall-gateway', 'pitwall-projector', 'pitwall-site', 'pitwall-worker'],
      'services with /metrics are tagged metrics (the controller included)',
    )
    const prom = await parseJob(await readJobHcl('prometheus'), await readFile(varsFile('a', 'prometheus'), 'utf8'))
    const tmpl = arr(obj(arr(obj(arr(prom.TaskGroups)[0]).Tasks)[0]).Templates)
      .map((x) => String(obj(x).EmbeddedTmpl))
      .join('\n')
    const list = /parseJSON `(\[[^`]*\])`/.exec(tmpl)?.[1]
    t.same((JSON.parse(list ?? '[]') as string[]).sort(), tagged, 'the Prometheus job scrapes exactly those')
    const role = await readFile(join(JOBS_DIR, '..', 'ansible', 'roles', 'prometheus', 'defaults', 'main.yml'), 'utf8')
    const roleList = [
      ...(/prometheus_scrape_services:\n((?:\s+- .+\n?)+)/.exec(role)?.[1] ?? '').matchAll(/- (\S+)/g),
    ].map((m) => m[1]!)
    t.same(roleList.sort(), tagged, 'the Ansible prometheus role scrapes the same')
    const consulCfg = await readFile(join(JOBS_DIR, '..', 'monitoring', 'prometheus-consul.yml'), 'utf8')
    const sd = [...consulCfg.matchAll(/services: \['([^']+)'\]\s+tags: \['metrics'\]/g)].map((m) => m[1]!)
    t.same(sd.sort(), tagged, 'monitoring/prometheus-consul.yml selects the same services by the metrics tag')
  },
)

t.test('a var file assigning an undeclared variable or missing a required one is refused', async (t) => {
  const hcl = await readJobHcl('worker')
  await t.rejects(parseJob(hcl, 'nope = 1\n'), /Undefined variable/)
  await t.rejects(parseJob(hcl, 'site = "a"\n'), /Unset variable/)
})

t.test('the deployment name goes from sites/ into every application job and is validated there', async (t) => {
  const topo = localTopology({ deployment: 'plant-7' })
  for (const job of ['worker', 'projector', 'gateway', 'controller'] as const) {
    t.equal(siteVars(topo, 'a', job).deployment, 'plant-7', `${job}: deployment var`)
    const j = await parseJob(await readJobHcl(job), renderVarFile(siteVars(topo, 'a', job), 'test'))
    t.equal(
      obj(obj(arr(obj(arr(j.TaskGroups)[0]).Tasks)[0]).Env).PITWALL_DEPLOYMENT,
      'plant-7',
      `${job}: PITWALL_DEPLOYMENT from the var`,
    )
  }
  t.equal(siteVars(localTopology(), 'a', 'worker').deployment, 'default', 'default: default')
  t.throws(() => localTopology({ deployment: 'Plant_7' }), { code: 'PW_CONFIG_INVALID', message: /deployment/ })
})

t.test(
  "an unknown or misspelled attribute or block is refused, naming it and its block, as Nomad's parser does",
  async (t) => {
    const hcl = await readJobHcl('worker')
    const vars = await readFile(varsFile('a', 'worker'), 'utf8')
    const refused = async (from: RegExp, to: string, msg: RegExp, what: string): Promise<void> => {
      t.match(hcl, from, `${what}: the job file has what is misspelled`)
      await t.rejects(parseJob(hcl.replace(from, to), vars), msg, what)
    }
    await refused(
      /min_healthy_time(\s+)=/,
      'min_healty_time$1=',
      /^job "pitwall-worker" > update: Unsupported argument; An argument named "min_healty_time" is not expected here\. Did you mean "min_healthy_time"\?$/,
      'update attribute',
    )
    await refused(
      /(\n\s+)driver(\s+)=/,
      '$1drivr$2=',
      /job "pitwall-worker" > group "worker" > task "worker": Unsupported argument; An argument named "drivr" is not expected here\. Did you mean "driver"\?/,
      'task attribute',
    )
    await refused(
      /resources \{/,
      'resource {',
      /> task "worker": Unsupported block type; Blocks of type "resource" are not expected here\. Did you mean "resources"\?/,
      'task block',
    )
    await refused(
      /(\n\s+)count(\s+)=/,
      '$1cuont$2=',
      /> group "worker": Unsupported argument; An argument named "cuont" is not expected here\. Did you mean "count"\?/,
      'group attribute',
    )
    await refused(
      /(\n\s+)interval(\s+)= "10s"/,
      '$1intervall$2= "10s"',
      /> service > check: Unsupported argument; An argument named "intervall" is not expected here\. Did you mean "interval"\?/,
      'check attribute',
    )
    await refused(
      /(\n\s+)datacenters(\s+)=/,
      '$1datacenters$2= ["x"]\n  colour$2=',
      /^job "pitwall-worker": Unsupported argument; An argument named "colour" is not expected here\.$/,
      'job attribute, no near miss',
    )
    const j = await parseJob(hcl.replace(/(\n\s+)driver(\s+)= .*\n/, '$&$1env { ANY_NAME = "x" }\n'), vars)
    t.ok(j.ID, 'env, config and meta stay free-form')
    for (const job of JOBS) {
      for (const site of topo.sites)
        t.ok(
          (await parseJob(await readJobHcl(job), await readFile(varsFile(site.name, job), 'utf8'))).ID,
          `${site.name}/${job}: every checked-in job passes the strict parser`,
        )
    }
  },
)

t.test('what the test parser does not evaluate it refuses, naming it, instead of passing it through', async (t) => {
  const hcl = await readJobHcl('worker')
  const vars = await readFile(varsFile('a', 'worker'), 'utf8')
  const env = (line: string): string => hcl.replace(/(\n\s+)env \{/, (m) => `${m}\n        PROBE = ${line}`)
  const probe = async (h: string, v = vars): Promise<Json | undefined> =>
    obj(obj(arr(obj(arr((await parseJob(h, v)).TaskGroups)[0]).Tasks)[0]).Env).PROBE
  t.match(hcl, /\n\s+env \{/, 'the worker job has an env block')
  // Variables: the declared type, with HCL's conversions.
  t.match(hcl, /variable "partitions" \{[^}]*type\s+=\s+number/, 'partitions is a number variable')
  await t.rejects(
    parseJob(hcl, vars.replace(/^partitions\s*=.*$/m, 'partitions = "lots"')),
    /^Invalid value for variable "partitions": .* a number is required\.$/,
  )
  t.equal(
    obj(
      obj(
        arr(
          obj(arr((await parseJob(hcl, vars.replace(/^partitions\s*=.*$/m, 'partitions = "32"'))).TaskGroups)[0]).Tasks,
        )[0],
      ).Env,
    ).PITWALL_PARTITIONS,
    '32',
    '"32" converts to the number 32',
  )
  await t.rejects(
    parseJob(hcl, vars.replace(/^site\s*=.*$/m, 'site = ["a"]')),
    /^Invalid value for variable "site": .* string is required\.$/,
  )
  // Interpolations: var.<name> substituted, runtime ones kept, $${ literal; anything else refused.
  t.equal(await probe(env('"${var.site}-x"')), 'a-x')
  t.equal(
    await probe(env('"${NOMAD_ALLOC_ID}/${attr.unique.hostname}/${node.datacenter}"')),
    '${NOMAD_ALLOC_ID}/${attr.unique.hostname}/${node.datacenter}',
    'runtime interpolations kept',
  )
  t.equal(await probe(env('"a$${x}b"')), 'a${x}b', '$${ is a literal ${')
  await t.rejects(probe(env('"${var.nope + 1}"')), /Unknown variable: There is no variable named "nope"/)
  await t.rejects(probe(env('"${upper(var.site)}"')), /Unsupported expression "\$\{upper\(var\.site\)\}"/, 'a function')
  await t.rejects(probe(`locals {}\n${env('local.x')}`), /Unsupported expression "\$\{local\.x\}"/, 'a local')
  await t.rejects(probe(env('"${var.partitions * 2}"')), /Unsupported expression/, 'an operator')
  // Numbers of the fields the API maps.
  await t.rejects(
    parseJob(hcl.replace(/(\n\s+)count(\s+)= .*/, '$1count$2= "two"'), vars),
    /group "worker" > count: Unsuitable value type; .* a number is required, got "two"/,
  )
  await t.rejects(
    parseJob(hcl.replace(/(\n\s+)cpu(\s+)= .*/, '$1cpu$2= true'), vars),
    /resources\.cpu: Unsuitable value type/,
  )
  // Syntax errors come from HCL itself, with the position.
  await t.rejects(
    parseJob(hcl.replace(/\}\s*$/, ''), vars),
    /^error parsing: .*job\.hcl:\d+,\d+-\d+: Unclosed configuration block/,
  )
  await t.rejects(
    parseJob(hcl.replace(/(\n\s+)(driver\s+= .*)/, '$1$2$1$2'), vars),
    /Attribute redefined; The argument "driver" was already set/,
  )
})
