import t from 'tap'
import { jetstreamManager } from '@nats-io/jetstream'
import { mappingFor, partitionOf, parsePartitioned, tlmSubject } from '../../actors/subjects.js'
import { connectTo, startNats } from '../helpers/nats.js'

t.test('partitionOf matches nats-server partition() mapping', async (t) => {
  const P = 16
  const m = mappingFor('a', P)
  const srv = await startNats({ config: `mappings = { "${m.from}": "${m.to}" }` })
  t.teardown(() => srv.stop())
  const nc = await connectTo(srv.url)
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: 'TLM', subjects: ['tlm.a.*.*.*'] })
  const js = jsm.jetstream()
  const ids: Array<[string, string]> = []
  for (let i = 0; i < 300; i++) ids.push([i % 2 ? 'sensor' : 'vehicle', `e-${i}_${(i * 7919).toString(36)}`])
  ids.push(['vehicle', 'WDB1240821A234567'], ['sensor', 'x'], ['sensor', 'Ünicode'.replace('Ü', 'U')])
  for (const [k, id] of ids) await js.publish(`tlm.a.${k}.${id}`, '{}')
  let seq = 0
  for (const [k, id] of ids) {
    seq++
    const msg = await jsm.streams.getMessage('TLM', { seq })
    t.equal(msg?.subject, tlmSubject('a', partitionOf(k, id, P), k, id), `${k}/${id}`)
  }
})

t.test('parsePartitioned', async (t) => {
  t.same(parsePartitioned('tlm.a.3.sensor.s1'), { site: 'a', partition: 3, kind: 'sensor', id: 's1' })
  t.equal(parsePartitioned('tlm.a.x.sensor.s1'), undefined)
  t.equal(parsePartitioned('tlm.a.sensor.s1'), undefined)
})
