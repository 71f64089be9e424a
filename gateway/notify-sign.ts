/**
 * Webhook signatures and retry delays: pure functions, shared by the delivery worker (notify-worker.ts) and by
 * receivers written in TypeScript (the same verification is shown in gateway/README.md, Notifications).
 *
 * A delivery is signed over `<timestamp>.<body>` with HMAC-SHA256 under the subscription's secret: the
 * timestamp (Unix seconds of the attempt, in `Pitwall-Timestamp`) is inside the MAC, so a receiver that rejects
 * timestamps older than its tolerance (300 s suggested) cannot be replayed a captured request later, and a
 * retry (a new attempt, a new timestamp) is signed afresh. The scheme is Stripe's and Slack's (`v1=` prefix so
 * a second algorithm can be added beside it during a migration).
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

/** Header names of a delivery request, as constants (receivers read them). */
export const NOTIFY_HEADERS = {
  delivery: 'pitwall-delivery',
  timestamp: 'pitwall-timestamp',
  signature: 'pitwall-signature',
  event: 'pitwall-event',
  subscription: 'pitwall-subscription',
  attempt: 'pitwall-attempt',
} as const

/** `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. */
export function signDelivery(secret: string, timestampS: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex')}`
}

/** Why a delivery failed verification, or null when it verifies. */
export type VerifyFailure = 'timestamp_missing' | 'timestamp_too_old' | 'timestamp_in_future' | 'signature_mismatch'

/**
 * A receiver's check: the timestamp within `toleranceS` of `nowS` (either side, for clock skew) and one of the
 * signature header's `v1=` values equal (in constant time) to the expected one.
 */
export function verifyDelivery(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  nowS: number = Math.floor(Date.now() / 1000),
  toleranceS = 300,
): VerifyFailure | null {
  const ts = Number(headers.timestamp)
  if (headers.timestamp === undefined || !Number.isInteger(ts)) return 'timestamp_missing'
  if (nowS - ts > toleranceS) return 'timestamp_too_old'
  if (ts - nowS > toleranceS) return 'timestamp_in_future'
  const want = Buffer.from(signDelivery(secret, ts, body))
  for (const part of (headers.signature ?? '').split(',').map((s) => s.trim())) {
    const got = Buffer.from(part)
    if (got.length === want.length && timingSafeEqual(got, want)) return null
  }
  return 'signature_mismatch'
}

/**
 * Delay before attempt `attempt + 1` after `attempt` failed (attempt >= 1): exponential from `baseMs`, capped at
 * `maxMs`, with "equal jitter" (half fixed, half random), so receivers coming back from an outage are not hit by
 * every gateway's retries at the same instant, while the delay never drops below half the schedule.
 */
export function retryDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(40, Math.max(0, attempt - 1)))
  return Math.round(exp / 2 + random() * (exp / 2))
}
