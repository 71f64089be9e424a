/** The public face of the gateway: what bin.ts, sites/ and tests may use. */
export { buildGateway } from './app.js'
export type { GatewayDeps } from './app.js'
export {
  compileGatewayConfig,
  gatewayOptionsFromEnv,
  parseApiKeys,
  parseCorsOrigins,
  GATEWAY_AUTH_ENV,
  GATEWAY_CORS_ENV,
  GATEWAY_DEFAULTS,
  GATEWAY_METRICS_ENV,
  GATEWAY_ENV,
  ROLES,
} from './config.js'
export type {
  ApiKey,
  AuthConfig,
  AuthOptions,
  GatewayConfig,
  GatewayOptions,
  JwksConfig,
  NotifyConfig,
  NotifyOptions,
  Role,
} from './config.js'
export { compileNotify, NOTIFY_DEFAULTS, NOTIFY_ENV } from './config.js'
export { NotifyWorker, LEASE_MARGIN_MS } from './notify-worker.js'
export type { NotifyWorkerOptions } from './notify-worker.js'
export { NOTIFY_HEADERS, retryDelayMs, signDelivery, verifyDelivery } from './notify-sign.js'
export type { VerifyFailure } from './notify-sign.js'
export { NOTIFY_EVENTS, DELIVERY_STATUSES } from './notify.js'
export { AddressPolicy, AddressRefused, embeddedIpv4, parseCidr, REFUSED_RANGES } from './notify-address.js'
export type { Access, Principal } from './auth.js'
export { migrate } from './db.js'
export { GatewayError, GW_ERR, PW_TO_GW, toGatewayError } from './errors.js'
export type { GatewayErrorCode } from './errors.js'
export { vinCheckDigit, vinProblem } from './validate.js'
export { GatewayMetrics } from './metrics.js'
export {
  ANON_USER,
  generateMqttUsers,
  MQTT_ANON_USER,
  mqttUsersMain,
  parseMqttUsersArgs,
  parseServiceUsers,
  reloadNats,
  renderMqttUsers,
} from './mqtt-users.js'
export type { MqttUsersOptions, ServiceUser } from './mqtt-users.js'
