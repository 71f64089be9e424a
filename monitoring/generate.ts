/**
 * Writes the generated Grafana files (dashboards JSON, provisioning YAML) into monitoring/grafana/ from the typed
 * dashboards in monitoring/dashboards/. Run: `npx tsx monitoring/generate.ts` (or `npm run dashboards`).
 * test/integration/monitoring-dashboards.test.ts fails when the checked-in files differ from what this writes.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generatedFiles } from './dashboards/mod.js'

/** Writes every generated file under `monitoringDir`; returns the relative paths written. */
export function writeGenerated(monitoringDir: string): string[] {
  const written: string[] = []
  for (const [rel, text] of generatedFiles()) {
    const file = join(monitoringDir, rel)
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, text)
    written.push(rel)
  }
  return written
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const rel of writeGenerated(dirname(fileURLToPath(import.meta.url)))) console.log(`wrote monitoring/${rel}`)
}
