/**
 * The Ansible inventory of a deployment, generated from the sites/ topology (one source for addresses and ports):
 * a group per site (`site_<name>`) with the site's settings as group variables, one host per nats-server with its
 * ports as host variables, and the functional groups the playbooks target. `renderInventory(localTopology())` is
 * checked in as ansible/inventory/local.yml (test/integration/ansible.test.ts fails when it drifts; rewrite it with
 * `pitwall deploy --write-vars`, which writes the Nomad var files and this inventory).
 */
import { mappingFor } from '../actors/mod.js'
import { deploymentOf, peerOf, type Topology, validateTopology } from '../sites/topology.js'

const q = (s: string): string => JSON.stringify(s)

/** YAML inventory text for `topo`. Strings holding `{{ }}` are tagged `!unsafe` so Ansible never templates them. */
export function renderInventory(topo: Topology, opts: { header?: string } = {}): string {
  validateTopology(topo)
  const L: string[] = [
    '---',
    `# ${opts.header ?? 'Inventory generated from sites/ (ansible/inventory.ts renderInventory); do not edit.'}`,
    'all:',
    '  vars:',
    `    pitwall_deployment: ${q(deploymentOf(topo))}`,
    `    pitwall_partitions: ${topo.partitions}`,
    // The first site's Consul datacenter is the primary (ACL authority) of the federation.
    `    consul_primary_datacenter: ${q(topo.sites[0]!.consulDatacenter)}`,
    '  children:',
  ]
  for (const s of topo.sites) {
    const peer = peerOf(topo, s.name)
    const map = mappingFor(s.name, topo.partitions)
    const pg = new URL(s.pgUrl)
    L.push(
      `    site_${s.name}:`,
      '      vars:',
      `        pitwall_site: ${q(s.name)}`,
      `        pitwall_peer_site: ${q(peer.name)}`,
      `        pitwall_domain: ${q(s.domain)}`,
      `        pitwall_peer_domain: ${q(peer.domain)}`,
      `        nats_server_domain: ${q(s.domain)}`,
      `        nats_server_cluster_name: ${q(`pitwall-${s.name}`)}`,
      `        nats_server_site_group: ${q(`site_${s.name}`)}`,
      `        nats_server_peer_group: ${q(`site_${peer.name}`)}`,
      `        nats_server_dials_peer: ${s.leafnodeRemotes.length > 0}`,
      `        nats_server_mapping_from: ${q(map.from)}`,
      `        nats_server_mapping_to: !unsafe ${q(map.to)}`,
      `        consul_datacenter: ${q(s.consulDatacenter)}`,
      `        consul_peer_datacenter: ${q(peer.consulDatacenter)}`,
      `        nomad_datacenter: ${q(s.nomadDatacenter)}`,
      `        nomad_region: ${q(s.nomadDatacenter)}`,
      `        postgresql_host: ${q(pg.hostname)}`,
      `        postgresql_port: ${Number(pg.port || 5432)}`,
      `        postgresql_user: ${q(decodeURIComponent(pg.username) || 'postgres')}`,
      `        postgresql_database: ${q(pg.pathname.replace(/^\//, ''))}`,
      `        pitwall_home_partitions: [${s.homePartitions.join(', ')}]`,
      '      hosts:',
    )
    for (const m of s.members) {
      L.push(
        `        ${m.name}:`,
        `          ansible_host: ${q(m.host)}`,
        `          nats_server_name: ${q(m.name)}`,
        `          nats_server_host: ${q(m.host)}`,
        `          nats_server_client_port: ${m.clientPort}`,
        `          nats_server_cluster_port: ${m.clusterPort}`,
        `          nats_server_leafnode_port: ${m.leafnodePort}`,
      )
      if (m.mqttPort !== undefined) L.push(`          nats_server_mqtt_port: ${m.mqttPort}`)
      if (m.websocketPort !== undefined) L.push(`          nats_server_websocket_port: ${m.websocketPort}`)
    }
  }
  // Functional groups: every site host runs the whole stack in this layout; split them per role for larger sites.
  for (const g of ['nats_servers', 'consul_servers', 'nomad_servers', 'postgresql_servers', 'monitoring', 'pitwall']) {
    L.push(`    ${g}:`, '      children:')
    for (const s of topo.sites) L.push(`        site_${s.name}: {}`)
  }
  return L.join('\n') + '\n'
}
