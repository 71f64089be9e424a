/**
 * The profiles this build knows. Adding a profile is one file under kinds/<kind>/ plus one line here.
 */
import type { AnyActorDefinition } from '../runtime.js'
import { asset } from './sensor/asset.js'
import { environment } from './sensor/environment.js'
import { processProfile } from './sensor/process.js'
import { processPairProfile } from './sensor/process-pair.js'
import { race } from './vehicle/race.js'
import { road } from './vehicle/road.js'

export const PROFILES: readonly AnyActorDefinition[] = [
  environment,
  asset,
  processProfile,
  processPairProfile,
  race,
  road,
]
