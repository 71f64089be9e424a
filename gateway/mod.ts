/** The public face of the gateway: what bin.ts, sites/ and tests may use. */
export { buildGateway } from './app.js'
export type { GatewayDeps } from './app.js'
export { compileGatewayConfig, gatewayOptionsFromEnv, GATEWAY_DEFAULTS, GATEWAY_ENV } from './config.js'
export type { GatewayConfig, GatewayOptions } from './config.js'
export { GatewayError, GW_ERR, PW_TO_GW, toGatewayError } from './errors.js'
export type { GatewayErrorCode } from './errors.js'
export { vinCheckDigit, vinProblem } from './validate.js'
